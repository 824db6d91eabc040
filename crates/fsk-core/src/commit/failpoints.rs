//! Test-only fault injection. With the `failpoints` feature, [`failpoint`] fails when the
//! named point is armed for the dataset at hand, and aborts the process (as a SIGKILL would
//! stop it: no destructor, no flush) when the environment variable [`CRASH_ENV`] names the
//! point; without the feature it compiles to nothing.

#[cfg(feature = "failpoints")]
use std::sync::Mutex;

#[cfg(feature = "failpoints")]
/// Armed points: name, dataset, and how many hits pass before it fails.
static ARMED: Mutex<Vec<(String, String, usize)>> = Mutex::new(Vec::new());

/// The environment variable naming a failpoint at which the process aborts (feature
/// `failpoints` only): the crash tests run the `fsk` binary with it.
pub const CRASH_ENV: &str = "FSK_CRASH_AT";

/// The environment variable naming a failpoint that fails with an error, as an armed one
/// does (feature `failpoints` only): the CLI tests use it for the committed-but-not-finished
/// exit code.
pub const FAIL_ENV: &str = "FSK_FAIL_AT";

/// Every failpoint, in protocol order.
pub const ALL: [&str; 6] = [
    "write.close_file",
    "commit.before_journal",
    "commit.after_journal",
    "commit.during_publish",
    "commit.after_publish",
    "commit.during_remove",
];

/// Arms failpoint `name` for the dataset displayed as `dataset` (only with the
/// `failpoints` feature). Scoping by dataset keeps parallel tests apart.
#[cfg(feature = "failpoints")]
pub fn arm(name: &str, dataset: &str) {
    arm_after(name, dataset, 0);
}

/// Arms failpoint `name` for `dataset` to fail from its hit number `pass + 1` on (the
/// first `pass` hits go through: "fail the second commit" is `pass = 1`).
#[cfg(feature = "failpoints")]
pub fn arm_after(name: &str, dataset: &str, pass: usize) {
    ARMED
        .lock()
        .expect("failpoints")
        .push((name.to_string(), dataset.to_string(), pass));
}

/// Disarms every failpoint of `dataset`.
#[cfg(feature = "failpoints")]
pub fn clear(dataset: &str) {
    ARMED
        .lock()
        .expect("failpoints")
        .retain(|(_, d, _)| d != dataset);
}

/// Fails with [`crate::Error::Internal`] when `name` is armed for `dataset`.
#[inline]
pub fn failpoint(name: &str, dataset: &crate::dataset::storage::Location) -> crate::Result<()> {
    #[cfg(feature = "failpoints")]
    {
        if std::env::var(CRASH_ENV).is_ok_and(|point| point == name) {
            eprintln!("fsk: crashing at failpoint {name} ({CRASH_ENV})");
            std::process::abort();
        }
        let display = dataset.to_string();
        let armed = ARMED
            .lock()
            .expect("failpoints")
            .iter_mut()
            .find(|(n, d, _)| n == name && *d == display)
            .is_some_and(|(_, _, pass)| {
                if *pass == 0 {
                    true
                } else {
                    *pass -= 1;
                    false
                }
            });
        if armed || std::env::var(FAIL_ENV).is_ok_and(|point| point == name) {
            return Err(crate::Error::Internal(format!(
                "failpoint {name} triggered"
            )));
        }
    }
    let _ = (name, dataset);
    Ok(())
}
