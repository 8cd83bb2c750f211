//! One owner of the config, and fail closed (issue 7, parts 2 and 3), with the real
//! daemon in network namespaces: `apply` while `serve` runs goes through the daemon and
//! nothing the daemon does later brings an older config back; a config that cannot be
//! installed leaves the safe base ruleset in force and the daemon serving; a settings
//! trial saved before a crash is rolled back after the restart.

use std::time::Duration;

use portcullis_e2e::cli::{Cli, Daemon};
use portcullis_e2e::clients;
use portcullis_e2e::netns;
use portcullis_e2e::nft;
use portcullis_e2e::poll;
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::time::in_secs;
use portcullis_e2e::{Config, Forward, Topology, LAN_HOST, ROUTER_WAN, WAN_HOST};

/// Starts `serve` and waits until its control socket answers `status`.
fn serve(cli: &Cli) -> Daemon {
    let mut d = cli.serve_until(Duration::from_secs(10), || {
        cli.dir.join("control.sock").exists() && cli.status(false).code == Some(0)
    });
    assert!(d.running());
    d
}

#[test]
fn apply_while_serving_goes_through_the_daemon_and_nothing_brings_the_old_config_back() {
    let t = Topology::new();
    let cli = t.cli();
    let _a = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _b = Server::tcp(&t.lan, sa(LAN_HOST, 81), "lan:81");
    let (at, expiry) = in_secs(3);
    let old = Config::new()
        .forward(Forward::tcp("removed", "8080", LAN_HOST).to_port("80"))
        .forward(
            Forward::tcp("temp", "8082", LAN_HOST)
                .to_port("81")
                .expires_at(&at),
        );
    std::fs::write(&cli.saved, old.to_json()).unwrap();
    let daemon = serve(&cli);
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_ok(),
        "old forward open at first"
    );

    // The owner removes `removed` through the CLI while the daemon runs.
    let new = Config::new()
        .forward(Forward::tcp("kept", "8081", LAN_HOST).to_port("81"))
        .forward(
            Forward::tcp("temp", "8082", LAN_HOST)
                .to_port("81")
                .expires_at(&at),
        );
    let run = cli.apply_text("new.json", &new.to_json());
    assert!(
        run.stdout.contains("through the running daemon"),
        "{}",
        run.story()
    );
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_err(),
        "removed forward closed"
    );

    // A WAN address change makes the daemon re-plan: from its own, current config.
    netns::ip(&[
        "-n",
        &t.router,
        "addr",
        "add",
        "203.0.113.3/24",
        "dev",
        "wan0",
    ]);
    // Expiry of another forward makes the daemon save: the current config, not the old one.
    let saved = poll::until(poll_left(expiry) + Duration::from_secs(6), || {
        let s = std::fs::read_to_string(&cli.saved).ok()?;
        (!s.contains("\"temp\"")).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "temp never expired from the saved config\n{}",
            daemon.logs()
        )
    });
    assert!(
        saved.contains("\"kept\"") && !saved.contains("\"removed\""),
        "{saved}"
    );
    // The re-plan after the address change happened (the log says so) and left it closed.
    assert!(
        poll::until_true(Duration::from_secs(8), || daemon
            .logs()
            .contains("re-planning")),
        "{}",
        daemon.logs()
    );
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_err(),
        "removed forward stays closed"
    );
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8081)).is_ok(),
        "kept forward answers"
    );
}

fn poll_left(t: std::time::SystemTime) -> Duration {
    t.duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
}

/// The safe base ruleset: our table with drop policies on input and forward, no forwards.
#[track_caller]
fn assert_safe_mode(t: &Topology, cli: &Cli, daemon: &mut Daemon) {
    let listing = poll::until(Duration::from_secs(10), || {
        nft::list_table(&t.router).filter(|l| l.contains("policy drop"))
    })
    .unwrap_or_else(|| {
        panic!(
            "no safe table installed: {:?}\n{}",
            nft::list_table(&t.router),
            daemon.logs()
        )
    });
    assert!(
        listing.contains("hook input priority filter; policy drop"),
        "{listing}"
    );
    assert!(
        listing.contains("hook forward priority filter; policy drop"),
        "{listing}"
    );
    assert!(
        daemon.running(),
        "the daemon keeps serving\n{}",
        daemon.logs()
    );
    let status = cli.status(false);
    assert!(
        status.stdout.contains("SAFE MODE"),
        "status says so: {}",
        status.story()
    );
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_err(),
        "nothing forwarded"
    );
}

#[test]
fn a_config_the_kernel_or_validation_refuses_leaves_the_safe_ruleset_and_the_daemon_running() {
    let t = Topology::new();
    let cli = t.cli();
    let _a = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    netns::sysctl(&t.router, "net.ipv4.ip_forward", "1");
    let mut cfg = Config::new().forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"));
    cfg.lan_subnets = vec!["192.168.0.0/16".into(), "192.168.1.0/24".into()];
    std::fs::write(&cli.saved, cfg.to_json()).unwrap();
    let mut daemon = cli.serve();
    assert_safe_mode(&t, &cli, &mut daemon);
    // The WAN cannot reach a LAN host directly either (forward policy drop).
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(LAN_HOST, 80)).is_err(),
        "WAN reaches the LAN"
    );
    // A good config through the daemon leaves safe mode.
    let good = Config::new().forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"));
    cli.apply_text("good.json", &good.to_json());
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_ok(),
        "forward after the fix"
    );
    assert!(!cli.status(false).stdout.contains("SAFE MODE"));
}

#[test]
fn an_unparseable_saved_config_leaves_the_safe_ruleset() {
    let t = Topology::new();
    let cli = t.cli();
    std::fs::write(
        &cli.saved,
        r#"{"version":1,"lan":{"interface":"lan0","subnets":["192.168.1.0/24"]},"wan":{"interface":"wan0"},"forwards":[{"name":"x","protocol":"tcp","external_port":8080,"internal_host":"192.168.1.10","expires_at":"2030-01-01T00:00:00+0é00"}]}"#,
    )
    .unwrap();
    let mut daemon = cli.serve();
    assert_safe_mode(&t, &cli, &mut daemon);
    assert!(daemon.logs().contains("SAFE MODE"), "{}", daemon.logs());
}

#[test]
fn a_trial_saved_before_a_crash_is_rolled_back_after_the_restart() {
    let t = Topology::new();
    let cli = t.cli();
    // The settings on trial: the UI moved to port 8088; before it, port 80.
    let mut on_trial = Config::new();
    on_trial.http_port = 8088;
    std::fs::write(&cli.saved, on_trial.to_json()).unwrap();
    let trial = r#"{"previous":{"lan":{"interface":"lan0","subnets":["192.168.1.0/24"]},"wan":{"interface":"wan0"},"management":{"http_port":80}},"deadline":"2020-01-01T00:00:00Z"}"#;
    std::fs::write(cli.dir.join("trial.json"), trial).unwrap();
    let daemon = serve(&cli);
    let saved = poll::until(Duration::from_secs(10), || {
        let s = std::fs::read_to_string(&cli.saved).ok()?;
        s.contains("\"http_port\": 80\n").then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "the overdue trial was not rolled back: {}\n{}",
            std::fs::read_to_string(&cli.saved).unwrap_or_default(),
            daemon.logs()
        )
    });
    assert!(!saved.contains("8088"));
    assert!(
        !cli.dir.join("trial.json").exists(),
        "trial file removed after the rollback"
    );
    let audit = poll::until(Duration::from_secs(15), || {
        let a = std::fs::read_to_string(cli.dir.join("audit.json")).ok()?;
        a.contains("trial.rollback").then_some(a)
    });
    assert!(
        audit.is_some(),
        "the audit log records the rollback\n{}",
        daemon.logs()
    );
}

#[test]
fn every_command_answers_help_and_a_second_daemon_is_refused() {
    let t = Topology::new();
    let cli = t.cli();
    for cmd in ["check", "plan", "apply", "status", "serve", "set-password"] {
        let r = cli.run(&[cmd, "--help"]);
        assert_eq!(r.code, Some(0), "{cmd} --help: {}", r.story());
        assert!(r.stdout.contains("usage:"), "{cmd} --help: {}", r.story());
    }
    std::fs::write(&cli.saved, Config::new().to_json()).unwrap();
    let _daemon = serve(&cli);
    let second = cli.run(&["serve"]);
    assert_eq!(second.code, Some(1), "{}", second.story());
    assert!(
        second.stderr.contains("another portcullis daemon"),
        "{}",
        second.story()
    );
}

#[test]
fn the_daemon_cleans_up_temporaries_at_start_and_its_sockets_at_exit() {
    let t = Topology::new();
    let cli = t.cli();
    std::fs::write(&cli.saved, Config::new().to_json()).unwrap();
    // What a save killed half-way leaves behind.
    let leftover = cli.dir.join(".saved.json.tmp-99999");
    std::fs::write(&leftover, "{").unwrap();
    let mut daemon = serve(&cli);
    assert!(
        !leftover.exists(),
        "the stale temporary file was removed at start"
    );
    let sockets = || -> Vec<String> {
        std::fs::read_dir(&cli.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sock"))
            .collect()
    };
    // The web UI socket appears once the UI runs on the LAN address.
    assert!(
        poll::until_true(Duration::from_secs(10), || sockets().len() >= 2),
        "control and web sockets: {:?}\n{}",
        sockets(),
        daemon.logs()
    );
    let code = daemon
        .stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, Some(0), "{}", daemon.logs());
    assert_eq!(sockets(), Vec::<String>::new(), "sockets left after exit");
}

#[test]
fn an_edit_through_the_daemon_keeps_meters_and_counters() {
    let t = Topology::new();
    let cli = t.cli();
    let _a = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let one = Config::new().forward(
        Forward::tcp("web", "8080", LAN_HOST)
            .to_port("80")
            .rate_limit(5, "minute", 5),
    );
    std::fs::write(&cli.saved, one.to_json()).unwrap();
    let daemon = serve(&cli);
    assert!(clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_ok());
    let wan_host = WAN_HOST.to_string();
    let before = nft::list_table(&t.router).unwrap();
    assert!(
        before.contains(&wan_host),
        "the meter holds the source:\n{before}"
    );
    // Another forward added through the daemon: an element change, not a new table.
    let two = one
        .clone()
        .forward(Forward::tcp("other", "8081", LAN_HOST).to_port("80"));
    cli.apply_text("two.json", &two.to_json());
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8081)).is_ok(),
        "the new forward answers"
    );
    let after = nft::list_table(&t.router).unwrap();
    assert!(
        after.contains(&wan_host),
        "the meter entry of {wan_host} survived the edit:\n{after}\n{}",
        daemon.logs()
    );
    let status = cli.status(true).ok();
    assert!(
        status.stdout.contains("\"hits_packets\": 1"),
        "web's hit survived: {}",
        status.stdout
    );
}

#[test]
fn a_forward_to_the_routers_own_lan_address_is_refused_naming_the_field() {
    let t = Topology::new();
    let cli = t.cli();
    let cfg = Config::new().forward(Forward::tcp("self", "8080", portcullis_e2e::ROUTER_LAN));
    let file = cli.write("self.json", &cfg.to_json());
    let run = cli.apply(&file);
    assert_eq!(run.code, Some(1), "{}", run.story());
    assert!(
        run.stderr.contains("forwards[0].internal_host"),
        "the refusal names the field: {}",
        run.story()
    );
    assert!(!cli.saved.exists(), "nothing was saved");
}

#[test]
fn a_table_deleted_behind_the_daemon_is_put_back_and_audited() {
    let t = Topology::new();
    let cli = t.cli();
    let _a = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let cfg = Config::new().forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"));
    std::fs::write(&cli.saved, cfg.to_json()).unwrap();
    let daemon = serve(&cli);
    netns::run_ok(netns::command(
        &t.router,
        "nft",
        &["delete", "table", "inet", "portcullis"],
    ));
    let back = poll::until_true(Duration::from_secs(12), || {
        nft::list_table(&t.router).is_some_and(|l| l.contains("policy drop"))
    });
    assert!(back, "the table was not reinstalled\n{}", daemon.logs());
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_ok(),
        "forward works again"
    );
    let audited = poll::until_true(Duration::from_secs(15), || {
        std::fs::read_to_string(cli.dir.join("audit.json"))
            .is_ok_and(|a| a.contains("daemon.reconcile"))
    });
    assert!(audited, "the audit log says so\n{}", daemon.logs());
}

#[test]
fn a_config_that_is_not_even_json_keeps_the_ui_on_the_lan_and_a_copy_of_the_file() {
    let t = Topology::new();
    let cli = t.cli();
    let broken = "{\"version\":1,\"lan\":{\"interface\":\"lan0\",\"subnets\":[\"192.168.1.0/24\"]},\"wan\":{\"interface\":\"wan0\"},\"forwards\": [ ,";
    std::fs::write(&cli.saved, broken).unwrap();
    let mut daemon = cli.serve();
    assert_safe_mode(&t, &cli, &mut daemon);
    let on_lan = poll::until_true(Duration::from_secs(10), || {
        daemon.logs().contains("web UI on http://192.168.1.1:80/")
    });
    assert!(
        on_lan,
        "the UI answers on the LAN address\n{}",
        daemon.logs()
    );
    let copy = cli.dir.join("saved.json.bad");
    assert_eq!(
        std::fs::read_to_string(&copy).ok().as_deref(),
        Some(broken),
        "copy kept"
    );
}

#[test]
fn sighup_during_a_trial_keeps_the_trial_and_a_direct_apply_ends_it() {
    let t = Topology::new();
    let cli = t.cli();
    let mut on_trial = Config::new();
    on_trial.http_port = 8088;
    std::fs::write(&cli.saved, on_trial.to_json()).unwrap();
    let (deadline, at) = in_secs(4);
    let trial = format!(
        r#"{{"previous":{{"lan":{{"interface":"lan0","subnets":["192.168.1.0/24"]}},"wan":{{"interface":"wan0"}},"management":{{"http_port":80}}}},"deadline":"{deadline}"}}"#
    );
    let trial_file = cli.dir.join("trial.json");
    std::fs::write(&trial_file, &trial).unwrap();
    let mut daemon = serve(&cli);
    nix::sys::signal::kill(daemon.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(
        poll::until_true(Duration::from_secs(5), || daemon
            .logs()
            .contains("reloaded")),
        "{}",
        daemon.logs()
    );
    assert!(
        trial_file.exists(),
        "SIGHUP ended the trial\n{}",
        daemon.logs()
    );
    let rolled_back = poll::until_true(poll_left(at) + Duration::from_secs(8), || {
        std::fs::read_to_string(&cli.saved).is_ok_and(|s| s.contains("\"http_port\": 80\n"))
    });
    assert!(
        rolled_back,
        "the trial still rolled back after the reload\n{}",
        daemon.logs()
    );
    daemon
        .stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));

    // No daemon: a trial file left behind is ended by an explicit apply.
    std::fs::write(&trial_file, &trial).unwrap();
    cli.apply_text("direct.json", &on_trial.to_json());
    assert!(
        !trial_file.exists(),
        "a direct apply must end a stale trial"
    );
}
