"""Scale-out engines for batch jobs (``--engine``)."""
