//! The daemon's owner deciding and installing port mappings on a real kernel (root, a
//! network namespace per test): a granted mapping is in the kernel's sets with a timeout,
//! saved in leases.json with its absolute expiry, restored by a new owner, and closed by a
//! delete, by the owner's revoke, and all at once when the mode becomes `off`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use portcullis::config::{Config, UpnpMode};
use portcullis::daemon::{self, DaemonMapper, Edit, Handle};
use portcullis::engine::Engine;
use portcullis::portmap::table::{Decision, Revoke};
use portcullis::portmap::{MapRequest, Mapper, Proto, Refusal, Unmap, Via};

static N: AtomicU32 = AtomicU32::new(0);

const CONFIG: &str = r#"{
  "version": 1,
  "lan": { "interface": "lan0", "subnets": ["192.168.1.0/24"] },
  "wan": { "interface": "wan0" },
  "upnp": { "mode": "allow_list", "allow": [
    { "hosts": ["192.168.1.10/32"], "external_ports": "50000-50100", "protocol": "both" } ] }
}"#;

const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A namespace with lan0/wan0 and a state directory; both removed on drop.
struct Ns {
    name: String,
    dir: PathBuf,
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Ns {
    fn new(config: &str) -> Ns {
        let name = format!(
            "pcxlease-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("state dir");
        run("ip", &["netns", "add", &name]);
        let ns = Ns { name, dir };
        run(
            "ip",
            &[
                "-n", &ns.name, "link", "add", "lan0", "type", "veth", "peer", "name", "wan0",
            ],
        );
        for (dev, cidr) in [("lan0", "192.168.1.1/24"), ("wan0", "203.0.113.2/24")] {
            run("ip", &["-n", &ns.name, "addr", "add", cidr, "dev", dev]);
            run("ip", &["-n", &ns.name, "link", "set", dev, "up"]);
        }
        std::fs::write(ns.dir.join("config.json"), config).expect("config");
        ns
    }

    /// Starts an owner inside the namespace.
    fn owner(&self) -> (Handle, std::thread::JoinHandle<()>) {
        let saved = self.dir.join("config.json");
        let cfg = Config::load(&saved).expect("config loads");
        let path = format!("/run/netns/{}", self.name);
        let dir = self.dir.clone();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("netns");
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            daemon::spawn(
                Engine::open(&saved).expect("engine"),
                daemon::Start::Config(Box::new(cfg)),
                daemon::OwnerOptions {
                    trial_secs: 60,
                    state_dir: Some(dir),
                    notify: Box::new(|_| {}),
                    services: Default::default(),
                    run_dir: None,
                },
            )
            .expect("owner")
        })
        .join()
        .expect("spawned")
    }

    fn set(&self, name: &str) -> String {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.name,
                "nft",
                "list",
                "set",
                "inet",
                "portcullis",
                name,
            ],
        )
    }

    fn leases_file(&self) -> PathBuf {
        self.dir.join(daemon::LEASES_FILE)
    }
}

fn req(ext: u16, proto: Proto) -> MapRequest {
    MapRequest {
        via: Via::Upnp,
        client: HOST,
        mac: None,
        internal_client: HOST,
        proto,
        external_port: ext,
        exact: true,
        internal_port: ext,
        lifetime_secs: 600,
        description: "test".into(),
        remote_host: None,
        nonce: None,
    }
}

fn saved_ports(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_granted_mapping_is_in_the_kernel_saved_and_restored_by_the_next_owner() {
    let ns = Ns::new(CONFIG);
    let (handle, join) = ns.owner();
    let m = DaemonMapper::new(handle.clone());
    let g = m.map(req(50000, Proto::Tcp)).expect("granted");
    assert_eq!(g.lifetime_secs, 600);
    let allow = ns.set("allow_tcp");
    assert!(
        allow.contains("50000"),
        "allow_tcp lacks the lease:\n{allow}"
    );
    assert!(
        allow.contains("expires"),
        "the lease has no kernel timeout:\n{allow}"
    );
    assert!(
        ns.set("flows_tcp").contains("192.168.1.10"),
        "no live-flow element"
    );
    assert!(saved_ports(&ns.leases_file()).contains("50000"));
    // Another port for another host: refused, nothing installed.
    let mut other = req(50001, Proto::Tcp);
    other.client = Ipv4Addr::new(192, 168, 1, 20);
    other.internal_client = other.client;
    assert!(matches!(m.map(other), Err(Refusal::NotAllowed(_))));
    assert!(!ns.set("allow_tcp").contains("50001"));
    let snap = handle.snapshot().expect("snapshot");
    assert_eq!(snap.portmap.mappings.len(), 1);
    assert_eq!(
        snap.portmap.external.addr,
        Some(Ipv4Addr::new(203, 0, 113, 2))
    );
    // A new owner (daemon restart) restores it with its absolute expiry.
    handle.shutdown();
    join.join().expect("owner stops");
    let (handle, join) = ns.owner();
    let snap = handle.snapshot().expect("snapshot");
    assert_eq!(snap.portmap.mappings, vec![g.mapping.clone()]);
    assert!(
        ns.set("allow_tcp").contains("50000"),
        "restored in the kernel"
    );
    // The client's delete closes it.
    let m = DaemonMapper::new(handle.clone());
    m.unmap(Unmap::External {
        client: HOST,
        proto: Proto::Tcp,
        external_port: 50000,
    })
    .expect("deleted");
    assert!(!ns.set("allow_tcp").contains("50000"));
    assert!(!saved_ports(&ns.leases_file()).contains("50000"));
    handle.shutdown();
    join.join().expect("owner stops");
}

#[test]
fn switching_the_mode_off_closes_every_mapping_at_once_and_revoke_closes_one() {
    let ns = Ns::new(CONFIG);
    let (handle, join) = ns.owner();
    let m = DaemonMapper::new(handle.clone());
    for p in [50010, 50011, 50012] {
        m.map(req(p, Proto::Udp)).expect("granted");
    }
    let gone = handle
        .revoke(Revoke::One {
            proto: Proto::Udp,
            external_port: 50010,
        })
        .expect("revoked");
    assert_eq!(gone.expect("installed").len(), 1);
    let udp = ns.set("allow_udp");
    assert!(!udp.contains("50010") && udp.contains("50011"), "{udp}");
    let mut upnp = handle.config().expect("config").upnp;
    upnp.mode = UpnpMode::Off;
    handle
        .edit(Edit::Upnp {
            if_match: None,
            upnp,
        })
        .expect("owner answers")
        .expect("applied");
    let udp = ns.set("allow_udp");
    assert!(!udp.contains("50011") && !udp.contains("50012"), "{udp}");
    assert!(handle
        .snapshot()
        .expect("snapshot")
        .portmap
        .mappings
        .is_empty());
    assert_eq!(m.map(req(50013, Proto::Udp)), Err(Refusal::Off));
    handle.shutdown();
    join.join().expect("owner stops");
}

#[test]
fn ask_mode_always_adds_a_rule_to_the_config() {
    let ns = Ns::new(&CONFIG.replace("allow_list", "ask"));
    let (handle, join) = ns.owner();
    let m = DaemonMapper::new(handle.clone());
    let r = req(6000, Proto::Tcp);
    assert_eq!(m.map(r.clone()), Err(Refusal::Pending));
    let pending = handle.snapshot().expect("snapshot").portmap.pending;
    assert_eq!(pending.len(), 1);
    let rule = handle
        .decide(pending[0].id, Decision::Always)
        .expect("owner answers")
        .expect("decided")
        .expect("a rule");
    assert_eq!(rule.external_ports.to_string(), "6000");
    assert!(handle.config().expect("config").upnp.allow.contains(&rule));
    let saved = Config::load(&ns.dir.join("config.json")).expect("saved config loads");
    assert!(saved.upnp.allow.contains(&rule), "the rule is saved");
    m.map(r).expect("granted by the new rule");
    assert!(handle
        .snapshot()
        .expect("snapshot")
        .portmap
        .pending
        .is_empty());
    assert!(handle
        .decide(pending[0].id, Decision::Once)
        .expect("answers")
        .is_err());
    handle.shutdown();
    join.join().expect("owner stops");
}

/// Runs the CLI inside the namespace with the saved config of `ns`.
fn cli(ns: &Ns, args: &[&str]) -> String {
    let saved = ns.dir.join("config.json");
    let saved = saved.to_str().expect("utf-8 path");
    let mut all = vec![
        "netns",
        "exec",
        &ns.name,
        env!("CARGO_BIN_EXE_portcullis"),
        "--config",
        saved,
    ];
    all.extend_from_slice(args);
    run("ip", &all)
}

#[test]
fn apply_without_a_daemon_keeps_the_leases_the_new_config_allows() {
    let ns = Ns::new(CONFIG);
    let (handle, join) = ns.owner();
    DaemonMapper::new(handle.clone())
        .map(req(50020, Proto::Tcp))
        .expect("granted");
    handle.shutdown();
    join.join().expect("owner stops");
    // The same policy with another forward: the lease stays in the kernel and in status.
    let same = ns.dir.join("same.json");
    std::fs::write(
        &same,
        CONFIG.replace(
            r#""upnp""#,
            r#""forwards": [{"name": "ssh", "protocol": "tcp", "external_port": "2222", "internal_host": "192.168.1.30", "internal_port": "22"}], "upnp""#,
        ),
    )
    .expect("write");
    cli(&ns, &["apply", same.to_str().expect("utf-8")]);
    assert!(
        ns.set("allow_tcp").contains("50020"),
        "a direct apply dropped the lease"
    );
    assert!(
        cli(&ns, &["status"]).contains("50020"),
        "status lists the saved lease"
    );
    // Mode off: the lease closes and is no longer saved.
    let off = ns.dir.join("off.json");
    std::fs::write(&off, CONFIG.replace("allow_list", "off")).expect("write");
    let out = cli(&ns, &["apply", off.to_str().expect("utf-8")]);
    assert!(out.contains("closed port mapping tcp/50020"), "{out}");
    assert!(!ns.set("allow_tcp").contains("50020"));
    assert!(!saved_ports(&ns.leases_file()).contains("50020"));
}
