//! Credentials for the connection tests: a test nkey pair (certificates: `otlp_tls.rs`).

// A test nkey pair (public values from the NATS documentation, never used elsewhere).
pub const NKEY_SEED: &str = "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY";
pub const NKEY_PUBLIC: &str = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";
