//! Standard output for the CLI commands. A reader that goes away (`node user list | head -1`)
//! ends the command quietly with exit code 0, as doveadm does, rather than a panic on the
//! broken pipe (Rust ignores SIGPIPE, so `println!` panics there).

use std::io::Write;

/// Writes one formatted chunk to stdout; on a closed pipe, exits 0 at once.
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| out.flush());
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // Nobody reads the rest: stop here; what was written is what was wanted.
            std::process::exit(0);
        }
        // Anything else (a full disk under a redirect) must not pass silently.
        eprintln!("node: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for CLI output.
macro_rules! outln {
    () => { $crate::cli::out::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for CLI output.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::write(format_args!($($arg)*)) };
}
