//! `bench`: a component that measures the cost of moving a handle into a
//! box and back out.
//!
//! Not a command: it exports functions a benchmark calls on an instance it
//! keeps, so only fdbox calls are timed, not instantiation:
//! `put-get-cycles` (one handle in and out, `n` times; `benches/put_get.rs`)
//! and `put-memfds` / `get-all` (many handles in, then out from another
//! instance; `benches/daemon.rs`).

mod bindings {
    // The world is local to this crate, so it is written inline. `path`
    // still points at the repository's WIT for the fdbox package and the WASI
    // packages it depends on.
    //
    // The WIT resource `box` becomes `fdbox::fdbox::boxes::Box`; it is used
    // as `boxes::Box` and never imported bare, so std's `Box` stays visible.
    wit_bindgen::generate!({
        inline: "
            package fdbox:bench;

            world bench {
                import fdbox:fdbox/boxes@0.1.0;
                import fdbox:fdbox/memory-files@0.1.0;

                export put-get-cycles: func(box-name: string, n: u32) -> u32;
                export put-memfds: func(box-name: string, n: u32) -> u32;
                export get-all: func(box-name: string, n: u32) -> u32;
            }
        ",
        path: "../../../wit",
        // fdbox's functions take and return `wasi:filesystem` descriptors,
        // so those bindings are generated too.
        generate_all,
    });
}

use bindings::fdbox::fdbox::{boxes, memory_files};

struct Bench;

impl bindings::Guest for Bench {
    /// Opens the existing box `box_name`, creates one memory file, then `n`
    /// times puts it as entry `x` and gets it back. Returns `n`.
    ///
    /// Any error panics, which traps the instance: a benchmark must not
    /// report timings for work that did not happen.
    fn put_get_cycles(box_name: String, n: u32) -> u32 {
        let bx = boxes::Box::open(&box_name)
            .unwrap_or_else(|code| panic!("open box {box_name}: {}", code.name()));
        let mut fd =
            memory_files::create("x").unwrap_or_else(|code| panic!("create: {}", code.name()));
        for i in 0..n {
            if let Err(refused) = bx.put("x", fd) {
                panic!("put #{i}: {}", refused.code.name());
            }
            fd = bx
                .get("x")
                .unwrap_or_else(|code| panic!("get #{i}: {}", code.name()));
        }
        n
    }

    /// Opens the existing box `box_name`, then `n` times creates a memory
    /// file and puts it as entry `i` (`0`, `1`, ... `n-1`), one put per
    /// handle. Returns `n`.
    fn put_memfds(box_name: String, n: u32) -> u32 {
        let bx = boxes::Box::open(&box_name)
            .unwrap_or_else(|code| panic!("open box {box_name}: {}", code.name()));
        for i in 0..n {
            let name = i.to_string();
            let fd = memory_files::create(&name)
                .unwrap_or_else(|code| panic!("create #{i}: {}", code.name()));
            if let Err(refused) = bx.put(&name, fd) {
                panic!("put #{i}: {}", refused.code.name());
            }
        }
        n
    }

    /// Opens the existing box `box_name` and gets entries `0` to `n-1` out of
    /// it, one get per handle, keeping every descriptor until all are out
    /// (they close when the call returns). Returns how many it got.
    fn get_all(box_name: String, n: u32) -> u32 {
        let bx = boxes::Box::open(&box_name)
            .unwrap_or_else(|code| panic!("open box {box_name}: {}", code.name()));
        let held: Vec<_> = (0..n)
            .map(|i| {
                bx.get(&i.to_string())
                    .unwrap_or_else(|code| panic!("get #{i}: {}", code.name()))
            })
            .collect();
        held.len() as u32
    }
}

bindings::export!(Bench with_types_in bindings);
