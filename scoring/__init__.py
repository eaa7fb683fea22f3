"""Running a model over leads: batch scoring (files, databases), Spark, the HTTP service, score history, drift."""
