"""The analyst's side: the model against points rules, forecasts, plots and HTML reports."""
