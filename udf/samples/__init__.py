"""Sample UDFs, each a plain function for `udf.sdk.serve`."""
