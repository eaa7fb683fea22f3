"""Reading a company's CRM data: files, the project config, its inference, the synthetic generator."""
