"""Pure GBS (HTTP storage protocol) codec: NURLs, request builders, response parsers."""
