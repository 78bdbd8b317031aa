//! `resp-v2`: version 2 of the RESP service (`version:resp-v2` in `INFO`,
//! adds `STRLEN`); see the `resp_service` library for the protocol, the store
//! and the hand-over.

fn main() -> std::process::ExitCode {
    resp_service::main(resp_service::Version::V2)
}
