//! `cargo run --bin fdbox-guest-artifacts`: build every guest example (the
//! build script does) and print where each component is.

fn main() {
    for (name, path) in fdbox_guest_artifacts::ALL {
        println!("{name}\t{path}");
    }
}
