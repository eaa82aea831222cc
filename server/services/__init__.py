"""Services: the translation between HTTP requests and graph runs."""
