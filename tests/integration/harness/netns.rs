//! Network namespaces with a veth pair to the host, made and removed by the test itself: for
//! clients that refuse peers in 127.0.0.0/8 (Transmission calls them "martian"), which then
//! see the host at a real address. Needs root (CI runs as root); where a namespace cannot be
//! made, the test fails saying so: a skip is not a pass.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Netns {
    pub name: String,
    /// The host's address on the pair, where the namespace reaches it.
    pub host_ip: String,
    /// The namespace's own address.
    pub inner_ip: String,
    host_link: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e} (iproute2)"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

impl Netns {
    /// A namespace of this test process's own, `10.213.N.2/24`, its host side `10.213.N.1`.
    pub fn create() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = std::process::id() % 10_000 * 10 + NEXT.fetch_add(1, Ordering::Relaxed) % 10;
        let n = id % 250 + 1;
        let ns = Netns {
            name: format!("s3t-{id}"),
            host_ip: format!("10.213.{n}.1"),
            inner_ip: format!("10.213.{n}.2"),
            host_link: format!("s3t{id}h"),
        };
        let inner_link = format!("s3t{id}n");
        let made = ip(&["netns", "add", &ns.name])
            .and_then(|_| {
                ip(&[
                    "link",
                    "add",
                    &ns.host_link,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &inner_link,
                ])
            })
            .and_then(|_| ip(&["link", "set", &inner_link, "netns", &ns.name]))
            .and_then(|_| {
                ip(&[
                    "addr",
                    "add",
                    &format!("{}/24", ns.host_ip),
                    "dev",
                    &ns.host_link,
                ])
            })
            .and_then(|_| ip(&["link", "set", &ns.host_link, "up"]))
            .and_then(|_| {
                let inner = format!("{}/24", ns.inner_ip);
                ip(&["-n", &ns.name, "addr", "add", &inner, "dev", &inner_link])
            })
            .and_then(|_| ip(&["-n", &ns.name, "link", "set", &inner_link, "up"]))
            .and_then(|_| ip(&["-n", &ns.name, "link", "set", "lo", "up"]));
        if let Err(e) = made {
            drop(ns);
            panic!("cannot make a network namespace (needs root and iproute2): {e}");
        }
        ns
    }

    /// `program`, run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
