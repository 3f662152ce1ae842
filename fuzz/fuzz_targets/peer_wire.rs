#![no_main]
// The body lives in the library (s3torrent::fuzzing::peer_wire) so cargo test smoke-runs it too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| s3torrent::fuzzing::peer_wire(data));
