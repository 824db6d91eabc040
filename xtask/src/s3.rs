//! A live S3-compatible server for the tests: `moto` from PyPI, in a virtual environment kept
//! outside the clone (`$FSK_S3_VENV`, default `$HOME/.cache/fsk-s3-venv`), bound to a free
//! loopback port and stopped when the [`S3Server`] is dropped.
//!
//! Idempotent: the venv is created or repaired only when its pinned requirements changed, and
//! each run starts its own server on its own port with a fresh bucket.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Exactly what gets installed; a change re-installs.
const REQUIREMENTS: &[&str] = &["moto[s3]==5.2.5", "flask==3.1.3", "flask-cors==6.0.5"];
/// The bucket the tests use.
pub const BUCKET: &str = "fsk-test";

/// A running server; killed on drop.
pub struct S3Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl S3Server {
    /// Installs moto if needed, starts it and creates [`BUCKET`].
    pub fn start(log_dir: &Path) -> Result<Self, String> {
        let venv = crate::venv::ensure("FSK_S3_VENV", "fsk-s3-venv", REQUIREMENTS)?;
        let port = free_port()?;
        std::fs::create_dir_all(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let log = log_dir.join(format!("moto-{port}.log"));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err_file = log_file.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| format!("cannot start moto_server: {e}"))?;
        let mut server = S3Server { child, port, log };
        server.wait_ready()?;
        server.create_bucket(&venv)?;
        eprintln!("xtask: S3 test server (moto) on 127.0.0.1:{port}, bucket {BUCKET}");
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "moto_server exited ({status}); see {}",
                    self.log.display()
                ));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "moto_server did not listen on port {} within 60 s; see {}",
            self.port,
            self.log.display()
        ))
    }

    fn create_bucket(&self, venv: &Path) -> Result<(), String> {
        // A signed PUT through boto3 (installed with moto).
        let script = format!(
            "import boto3\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1',\n\
                 aws_access_key_id='test', aws_secret_access_key='test')\n\
             s3.create_bucket(Bucket='{BUCKET}')\n",
            self.endpoint()
        );
        let status = Command::new(crate::venv::python(venv))
            .args(["-c", &script])
            .status()
            .map_err(|e| format!("cannot run python: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("creating bucket {BUCKET} failed ({status})"))
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment the tests need: the gate (`FSK_TEST_S3`) and object_store's `AWS_*`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("FSK_TEST_S3", format!("s3://{BUCKET}")),
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
            // moto, like AWS, ignores the header form and silently overwrites.
            ("AWS_COPY_IF_NOT_EXISTS", "multipart".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("no free loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
