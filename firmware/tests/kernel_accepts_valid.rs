//! Property test: every config that `config::validate` accepts, the kernel accepts too.
//!
//! Needs root (CAP_SYS_ADMIN to unshare a network namespace, CAP_NET_ADMIN for
//! nf_tables). A seeded generator makes random configs — LAN subnets (some overlapping,
//! some with host bits), forwards with random single ports, ranges and translated ranges,
//! allow-lists with nested, overlapping and duplicate prefixes, rate limits, logging,
//! expiries, and triggers. Those that pass validation are planned and applied with
//! `Nft::apply` (which also reads the table back), each in a fresh network namespace of
//! its own: a thread unshares its network namespace, so the namespace disappears with the
//! thread and its socket, whatever happens.
//!
//! The seed is random per run and printed on failure; rerun one with
//! `PORTCULLIS_PROP_SEED=<seed> cargo test -p portcullis --test kernel_accepts_valid`.
//! `PORTCULLIS_PROP_CONFIGS=<n>` changes how many valid configs are applied (default 300).

use std::net::Ipv4Addr;

use nix::sched::{unshare, CloneFlags};
use portcullis::config::{
    validate, Config, Forward, Ipv4Net, Lan, Management, Per, PortRange, Protocol, RateLimit,
    Timestamp, Trigger, Wan, VERSION,
};
use portcullis::nft::Nft;
use portcullis::plan::{plan, HostFacts};

/// Planning time; expiries are generated relative to it.
const NOW: Timestamp = Timestamp(1_795_888_800); // 2026-11-28T18:00:00Z

/// xorshift64*, seeded: the whole run is a function of the seed.
struct Rng(u64);

impl Rng {
    /// Any seed, 0 included: splitmix64 spreads it into a non-zero state.
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Roughly log-uniform in `1..=max`: small values often, large ones sometimes.
    fn log_uniform(&mut self, max: u64) -> u64 {
        let bits = 64 - max.leading_zeros();
        let b = self.between(1, u64::from(bits));
        self.between(1u64 << (b - 1), ((1u64 << b) - 1).min(max))
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).expect("index")]
    }

    fn u16_between(&mut self, lo: u16, hi: u16) -> u16 {
        u16::try_from(self.between(u64::from(lo), u64::from(hi))).expect("u16")
    }

    fn u32_between(&mut self, lo: u32, hi: u32) -> u32 {
        u32::try_from(self.between(u64::from(lo), u64::from(hi))).expect("u32")
    }
}

fn net(addr: u32, len: u8) -> Ipv4Net {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Ipv4Net::new(Ipv4Addr::from(addr & mask), len).expect("length at most 32")
}

/// A LAN subnet: usually private, sometimes any address, sometimes inside the previous one.
fn subnet(rng: &mut Rng, earlier: &[Ipv4Net]) -> Ipv4Net {
    let len = if rng.chance(3) {
        *rng.pick(&[7u8, 31, 32])
    } else {
        u8::try_from(rng.between(8, 30)).expect("len")
    };
    if let Some(prev) = earlier.last() {
        if rng.chance(15) {
            // Nested in (or equal to) an earlier subnet: the kernel refuses overlaps.
            let inner = len.max(prev.prefix_len());
            let (lo, hi) = prev.span();
            return net(rng.u32_between(lo, hi), inner);
        }
    }
    let base = match rng.below(10) {
        0..=3 => 0x0a00_0000 | rng.u32_between(0, 0x00ff_ffff), // 10/8
        4..=6 => 0xc0a8_0000 | rng.u32_between(0, 0xffff),      // 192.168/16
        7 => 0xac10_0000 | rng.u32_between(0, 0x000f_ffff),     // 172.16/12
        _ => rng.u32_between(0, u32::MAX),
    };
    let mut n = net(base, len);
    if rng.chance(3) {
        // Host bits set: validation refuses it.
        n = Ipv4Net::new(Ipv4Addr::from(base | 1), len).expect("length at most 32");
    }
    n
}

/// A port range: mostly single ports or short ranges, sometimes long ones.
fn port_range(rng: &mut Rng) -> PortRange {
    let len: u16 = match rng.below(10) {
        0..=4 => 1,
        5..=7 => rng.u16_between(2, 20),
        8 => rng.u16_between(21, 1000),
        _ => u16::try_from(rng.log_uniform(30_000)).expect("u16"),
    };
    let first = if rng.chance(5) {
        // The edges of the port space.
        *rng.pick(&[1u16, 65_535 - (len - 1)])
    } else {
        rng.u16_between(1, 65_535 - (len - 1))
    };
    PortRange::new(first, first + (len - 1)).expect("generated range is valid")
}

/// Another range of the same length (or a different one, sometimes).
fn internal_range(rng: &mut Rng, ext: PortRange) -> Option<PortRange> {
    match rng.below(10) {
        0..=4 => None,
        5 => Some(ext),
        6 => Some(port_range(rng)), // usually a different length: refused
        _ => {
            let len = u16::try_from(ext.count() - 1).expect("count");
            let first = rng.u16_between(1, 65_535 - len);
            Some(PortRange::new(first, first + len).expect("valid"))
        }
    }
}

/// An allow-list: empty, everything, or prefixes that nest, overlap and repeat.
fn allow_from(rng: &mut Rng) -> Vec<Ipv4Net> {
    let mut list: Vec<Ipv4Net> = Vec::new();
    if rng.chance(25) {
        return list;
    }
    if rng.chance(5) {
        list.push(net(0, 0));
    }
    if rng.chance(5) {
        list.push(net(0, 1));
        list.push(net(0x8000_0000, 1));
    }
    for _ in 0..rng.between(1, 8) {
        let n = match (list.last().copied(), rng.below(6)) {
            (Some(prev), 0) => prev, // duplicate
            (Some(prev), 1) => {
                // nested inside the previous one
                let len = u8::try_from(rng.between(u64::from(prev.prefix_len()), 32)).expect("len");
                let (lo, hi) = prev.span();
                net(rng.u32_between(lo, hi), len)
            }
            (Some(prev), 2) => {
                // a wider prefix around the previous one
                let len = u8::try_from(rng.between(0, u64::from(prev.prefix_len()))).expect("len");
                net(u32::from(prev.addr()), len)
            }
            _ => {
                let len = u8::try_from(rng.between(0, 32)).expect("len");
                net(rng.u32_between(0, u32::MAX), len)
            }
        };
        list.push(n);
    }
    if rng.chance(3) {
        // Host bits: refused by validation.
        list.push(Ipv4Net::new(Ipv4Addr::new(203, 0, 113, 7), 24).expect("valid"));
    }
    list
}

fn rate_limit(rng: &mut Rng) -> Option<RateLimit> {
    if rng.chance(60) {
        return None;
    }
    Some(RateLimit {
        connections: u32::try_from(rng.log_uniform(u64::from(u32::MAX))).expect("u32"),
        per: *rng.pick(&[Per::Second, Per::Minute, Per::Hour]),
        burst: u32::try_from(rng.log_uniform(100_000)).expect("u32"),
    })
}

fn protocol(rng: &mut Rng) -> Protocol {
    *rng.pick(&[Protocol::Tcp, Protocol::Udp, Protocol::Both])
}

fn name(rng: &mut Rng, i: usize) -> String {
    if rng.chance(2) {
        return "dup".into();
    }
    // Up to the 24-character limit (the longest chain, set, counter and log prefix names).
    let mut n = format!("n{i}-");
    let len = usize::try_from(rng.between(4, 24)).expect("small");
    while n.len() < len {
        n.push(*rng.pick(&['a', 'z', '0', '9', '-', '_']));
    }
    n
}

/// An interface name as the kernel allows it: 1 to 15 characters.
fn interface(rng: &mut Rng, fallback: &str) -> String {
    match rng.below(6) {
        0 => "br-lan.10".into(),
        1 => "eth0@if7".into(),
        2 => "abcdefghijklmno".into(),
        3 => "x".into(),
        _ => fallback.into(),
    }
}

fn forward(rng: &mut Rng, i: usize, subnets: &[Ipv4Net]) -> Forward {
    let external_port = port_range(rng);
    let internal_host = match subnets.first() {
        Some(_) if rng.chance(97) => {
            let s = rng.pick(subnets);
            let (lo, hi) = s.span();
            Ipv4Addr::from(rng.u32_between(lo, hi))
        }
        _ => Ipv4Addr::from(rng.u32_between(0, u32::MAX)),
    };
    let expires_at = if rng.chance(30) {
        let ahead = rng.log_uniform(11 * 366 * 86_400);
        Some(Timestamp(NOW.0 + ahead))
    } else {
        None
    };
    Forward {
        name: name(rng, i),
        enabled: rng.chance(90),
        protocol: protocol(rng),
        internal_port: internal_range(rng, external_port),
        external_port,
        internal_host,
        device: None,
        allow_from: allow_from(rng),
        rate_limit: rate_limit(rng),
        log: rng.chance(30),
        expires_at,
        comment: if rng.chance(20) {
            "x".repeat(usize::try_from(rng.below(210)).expect("small"))
        } else {
            String::new()
        },
    }
}

fn trigger(rng: &mut Rng, i: usize) -> Trigger {
    Trigger {
        name: name(rng, 100 + i),
        enabled: rng.chance(90),
        trigger_protocol: protocol(rng),
        trigger_port: port_range(rng),
        open_protocol: protocol(rng),
        open_port: port_range(rng),
        timeout_secs: if rng.chance(5) {
            0
        } else {
            u32::try_from(rng.log_uniform(86_400)).expect("u32")
        },
        comment: String::new(),
    }
}

fn config(rng: &mut Rng) -> Config {
    let mut subnets = Vec::new();
    for _ in 0..rng.between(1, 3) {
        let s = subnet(rng, &subnets);
        subnets.push(s);
    }
    let forwards = (0..usize::try_from(rng.below(13)).expect("small"))
        .map(|i| forward(rng, i, &subnets))
        .collect();
    let triggers = (0..usize::try_from(rng.below(5)).expect("small"))
        .map(|i| trigger(rng, i))
        .collect();
    Config {
        version: VERSION,
        lan: Lan {
            interface: interface(rng, "lan0"),
            subnets,
        },
        wan: Wan {
            interface: interface(rng, "wan0"),
        },
        management: Management {
            http_port: if rng.chance(80) {
                80
            } else {
                rng.u16_between(1, 65_535)
            },
        },
        forwards,
        triggers,
        upnp: Default::default(),
        vpn: None,
        dhcp: None,
    }
}

/// One or two WAN addresses outside the LAN subnets (none, sometimes: DHCP pending).
fn wan_addrs(rng: &mut Rng, cfg: &Config) -> Vec<Ipv4Addr> {
    let mut addrs = Vec::new();
    for _ in 0..rng.below(3) {
        let a = Ipv4Addr::from(rng.u32_between(0x0100_0000, 0xdfff_ffff));
        if !addrs.contains(&a) && !cfg.lan.subnets.iter().any(|n| n.contains(a)) {
            addrs.push(a);
        }
    }
    addrs
}

/// An error and its causes, one per line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!("\n  caused by: {c}"));
        cur = c.source();
    }
    s
}

/// Plans and applies `cfg` in a network namespace of its own (unshared by a thread, gone
/// when the thread and its socket are).
fn apply_in_fresh_netns(cfg: Config, facts: HostFacts) -> Result<(), String> {
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        let rs = plan(&cfg, &facts, NOW);
        let mut nft = Nft::open().map_err(|e| chain(&e))?;
        nft.apply(&rs).map(drop).map_err(|e| chain(&e))
    })
    .join()
    .map_err(|_| "the apply thread panicked".to_string())?
}

#[test]
fn the_kernel_accepts_every_valid_config() {
    let seed = std::env::var("PORTCULLIS_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()) << 20)
                .unwrap_or(1)
        });
    let want: usize = std::env::var("PORTCULLIS_PROP_CONFIGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    eprintln!("kernel_accepts_valid: seed {seed} (PORTCULLIS_PROP_SEED={seed} to rerun)");
    let mut rng = Rng::new(seed);
    let (mut generated, mut valid) = (0usize, 0usize);
    let mut failures = Vec::new();
    let mut seen = Seen::default();
    while valid < want && generated < want * 20 {
        generated += 1;
        let cfg = config(&mut rng);
        let report = validate(&cfg, NOW);
        if report.has_errors() {
            continue;
        }
        valid += 1;
        seen.count(&cfg);
        let facts = HostFacts {
            wan_addrs: wan_addrs(&mut rng, &cfg),
            ..Default::default()
        };
        let json = cfg.to_json();
        let wan = facts.wan_addrs.clone();
        // The saved form must read back as the same config.
        assert_eq!(
            Config::parse(&json).ok().as_ref(),
            Some(&cfg),
            "seed {seed}: config #{generated} does not survive to_json/parse:\n{json}"
        );
        if let Err(e) = apply_in_fresh_netns(cfg, facts) {
            failures.push(format!(
                "config #{generated} (wan_addrs {wan:?}): {e}\n{json}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: the kernel refused {} of {valid} valid configs; the first:\n{}",
        failures.len(),
        failures.first().map(String::as_str).unwrap_or_default()
    );
    // A generator that rarely makes valid configs would test nothing.
    assert!(
        valid >= want,
        "seed {seed}: only {valid} of {generated} generated configs were valid"
    );
    eprintln!(
        "kernel_accepts_valid: seed {seed}: {valid} valid configs of {generated} applied; {seen:?}"
    );
    // The valid configs must contain what the generator is meant to exercise.
    if want >= 100 {
        seen.assert_varied(seed);
    }
}

/// What the applied configs contained, to show the generator covers the features.
#[derive(Debug, Default)]
struct Seen {
    forwards: usize,
    translated_ranges: usize,
    long_ranges: usize,
    port_65535: usize,
    allow_lists_merging: usize,
    open_to_anyone: usize,
    rate_limits: usize,
    logging: usize,
    expiries: usize,
    triggers: usize,
    multi_subnets: usize,
}

impl Seen {
    fn count(&mut self, cfg: &Config) {
        self.multi_subnets += usize::from(cfg.lan.subnets.len() > 1);
        for f in cfg.forwards.iter().filter(|f| f.enabled) {
            self.forwards += 1;
            let int = f.internal_range();
            self.translated_ranges += usize::from(int != f.external_port && int.count() > 1);
            self.long_ranges += usize::from(f.external_port.count() > 1000);
            self.port_65535 += usize::from(f.external_port.last() == 65_535);
            let merging = f
                .allow_from
                .iter()
                .enumerate()
                .any(|(i, a)| f.allow_from[..i].iter().any(|b| a.overlaps(b)));
            self.allow_lists_merging += usize::from(merging);
            self.open_to_anyone += usize::from(f.open_to_anyone());
            self.rate_limits += usize::from(f.rate_limit.is_some());
            self.logging += usize::from(f.log);
            self.expiries += usize::from(f.expires_at.is_some());
        }
        self.triggers += cfg.triggers.iter().filter(|t| t.enabled).count();
    }

    fn assert_varied(&self, seed: u64) {
        let each = [
            self.forwards,
            self.translated_ranges,
            self.long_ranges,
            self.port_65535,
            self.allow_lists_merging,
            self.open_to_anyone,
            self.rate_limits,
            self.logging,
            self.expiries,
            self.triggers,
            self.multi_subnets,
        ];
        assert!(
            each.iter().all(|&n| n > 0),
            "seed {seed}: the valid configs miss a feature: {self:?}"
        );
    }
}
