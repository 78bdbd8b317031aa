//! `resp-v1`: version 1 of the RESP service (`version:resp-v1` in `INFO`);
//! see the `resp_service` library for the protocol, the store and the
//! hand-over.

fn main() -> std::process::ExitCode {
    resp_service::main(resp_service::Version::V1)
}
