//! The processes tests start: every child is stopped by its own PID when the test process
//! exits (`atexit`), and gets SIGKILL from the kernel if it dies first (`PR_SET_PDEATHSIG`);
//! ports are ephemeral.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

pub static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub(super) extern "C" fn stop_everything() {
    if let Ok(mut children) = CHILDREN.lock() {
        for child in children.iter_mut() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        for child in children.iter_mut() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    // S3TORRENT_KEEP_TEST_DIRS=1 keeps logs and scratch files for a look after a failure.
    if std::env::var_os("S3TORRENT_KEEP_TEST_DIRS").is_some() {
        return;
    }
    if let Ok(dirs) = DIRS.lock() {
        for d in dirs.iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Stops `child` with everything else when the test process exits.
pub fn register_child(child: Child) {
    CHILDREN.lock().unwrap().push(child);
}

/// Spawns from one long-lived thread: PR_SET_PDEATHSIG fires when the *thread* that
/// forked the child exits, and test threads come and go.
pub fn spawn_guarded(mut cmd: Command) -> Child {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    cmd.stdin(Stdio::null());
    tx.lock().unwrap().send((cmd, reply_tx)).unwrap();
    reply_rx.recv().unwrap().expect("spawn")
}

pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} did not open port {port} within 60 s; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
