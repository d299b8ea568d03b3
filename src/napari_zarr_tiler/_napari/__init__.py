"""napari adapters (npe2 reader, writer, sample data, dock widget): thin glue over the core."""
