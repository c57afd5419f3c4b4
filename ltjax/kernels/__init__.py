"""Native kernels that XLA calls through its FFI (custom calls), each with a pure-XLA fallback elsewhere in ltjax."""
