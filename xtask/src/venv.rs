//! Python virtual environments kept outside the clone (under `~/.cache`), created or repaired
//! only when their pinned requirements change.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A venv at `$<env_var>` or `~/.cache/<default_name>` holding exactly `requirements`.
pub fn ensure(env_var: &str, default_name: &str, requirements: &[&str]) -> Result<PathBuf, String> {
    let venv = match std::env::var_os(env_var) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| format!("HOME is not set; set {env_var}"))?;
            PathBuf::from(home).join(".cache").join(default_name)
        }
    };
    let stamp = venv.join("fsk-requirements.txt");
    let wanted = requirements.join("\n");
    if venv.join("bin/python").exists()
        && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted)
    {
        return Ok(venv);
    }
    eprintln!(
        "xtask: installing {} into {}",
        requirements.join(" "),
        venv.display()
    );
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .ok_or("python3 is required (a test server or benchmark baseline runs in Python)")?;
    run(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(requirements))?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(venv)
}

/// Runs a command to completion; an error names it.
pub fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

/// The venv's python.
pub fn python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}
