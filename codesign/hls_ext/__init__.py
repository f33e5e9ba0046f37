"""hls4ml extensions (layers, templates, sources) that codesign registers through hls4ml's extension API."""
