"""lib/ and include/linux helpers the driver uses: list_head, xarray."""
