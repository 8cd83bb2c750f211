//! The owner's decisions without root: edits as transactions, ETag conflicts, trials that
//! roll back only their own settings, expiry.

use super::*;
use crate::config::{Forward, Ipv4Net};

const NOW: Timestamp = Timestamp(1_800_000_000);

fn base() -> Config {
    let mut c = Config::parse(include_str!("../../examples/home.json")).expect("example parses");
    for f in &mut c.forwards {
        f.expires_at = None;
    }
    c
}

fn core() -> Core {
    Core::new(base(), None, Health::Ok)
}

fn forward(name: &str, port: u16) -> Forward {
    serde_json::from_value(serde_json::json!({
        "name": name, "protocol": "tcp", "external_port": port, "internal_host": "192.168.1.40"
    }))
    .expect("forward parses")
}

fn enact(c: &mut Core, e: Edit, now: Timestamp) -> Result<Proposal, EditError> {
    let p = c.propose(e, now, 60)?;
    c.commit(&p, now);
    Ok(p)
}

#[test]
fn concurrent_adds_both_survive_because_each_edit_starts_from_the_state_in_force() {
    let mut c = core();
    enact(&mut c, Edit::AddForward(forward("a", 4001)), NOW).unwrap();
    enact(&mut c, Edit::AddForward(forward("b", 4002)), NOW).unwrap();
    let names: Vec<_> = c.config.forwards.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"a") && names.contains(&"b"), "{names:?}");
}

#[test]
fn a_stale_etag_is_a_conflict_with_the_current_object() {
    let mut c = core();
    let old = etag(&c.config.forwards[0]);
    let mut changed = c.config.forwards[0].clone();
    changed.comment = "edited by someone else".into();
    enact(
        &mut c,
        Edit::ReplaceForward {
            name: "web".into(),
            if_match: Some(old.clone()),
            forward: changed.clone(),
        },
        NOW,
    )
    .unwrap();
    let err = c
        .propose(
            Edit::DeleteForward {
                name: "web".into(),
                if_match: Some(old),
            },
            NOW,
            60,
        )
        .unwrap_err();
    match err {
        EditError::Conflict {
            current,
            etag: Some(t),
            ..
        } => {
            assert_eq!(current.unwrap()["comment"], "edited by someone else");
            assert_eq!(t, etag(&changed));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // With the fresh tag it goes through.
    enact(
        &mut c,
        Edit::DeleteForward {
            name: "web".into(),
            if_match: Some(etag(&changed)),
        },
        NOW,
    )
    .unwrap();
    assert!(c.config.forwards.iter().all(|f| f.name != "web"));
}

#[test]
fn adding_a_taken_name_or_touching_a_missing_one_is_refused() {
    let c = core();
    assert!(matches!(
        c.propose(Edit::AddForward(forward("web", 4001)), NOW, 60),
        Err(EditError::Exists { .. })
    ));
    assert!(matches!(
        c.propose(
            Edit::DeleteTrigger {
                name: "nope".into(),
                if_match: None
            },
            NOW,
            60
        ),
        Err(EditError::NotFound {
            kind: Kind::Trigger,
            ..
        })
    ));
}

#[test]
fn invalid_results_are_refused_with_the_field() {
    let c = core();
    let mut f = forward("x", 8080); // 8080/tcp belongs to "web"
    f.name = "x".into();
    match c.propose(Edit::AddForward(f), NOW, 60) {
        Err(EditError::Invalid(r)) => {
            assert!(r.errors().any(|i| i.field.contains("external_port")), "{r}")
        }
        other => panic!("expected refusal, got {other:?}"),
    }
}

/// Changes the settings on trial (no If-Match) at `NOW`.
fn settings_on_trial(c: &mut Core, settings: Settings) {
    enact(
        c,
        Edit::Settings {
            if_match: None,
            settings,
        },
        NOW,
    )
    .unwrap();
}

fn settings_with_port(c: &Core, port: u16) -> Settings {
    let mut s = Settings::of(&c.config);
    s.management.http_port = port;
    s
}

#[test]
fn rollback_undoes_only_the_trials_settings_and_is_audited() {
    let mut c = core();
    let s = settings_with_port(&c, 8081);
    let tag = etag(&Settings::of(&c.config));
    enact(
        &mut c,
        Edit::Settings {
            if_match: Some(tag),
            settings: s,
        },
        NOW,
    )
    .unwrap();
    assert_eq!(c.trial.as_ref().unwrap().deadline, Timestamp(NOW.0 + 60));
    // A forward deleted during the trial stays deleted after the rollback.
    enact(
        &mut c,
        Edit::DeleteForward {
            name: "game".into(),
            if_match: None,
        },
        Timestamp(NOW.0 + 5),
    )
    .unwrap();
    assert!(c.due(Timestamp(NOW.0 + 59)).is_none());
    let later = Timestamp(NOW.0 + 60);
    let p = c.due(later).expect("rollback due");
    assert_eq!(p.event.as_ref().unwrap().action, "trial.rollback");
    assert_eq!(p.config.management.http_port, 80);
    assert!(p.config.forwards.iter().all(|f| f.name != "game"));
    c.commit(&p, later);
    assert!(c.trial.is_none());
    assert_eq!(c.rolled_back_at, Some(later));
}

#[test]
fn a_second_settings_change_keeps_the_first_previous_settings() {
    let mut c = core();
    let s1 = settings_with_port(&c, 8081);
    let s2 = settings_with_port(&c, 8082);
    settings_on_trial(&mut c, s1);
    settings_on_trial(&mut c, s2);
    assert_eq!(c.trial.as_ref().unwrap().previous.management.http_port, 80);
    assert!(c.confirm());
    assert!(c.trial.is_none() && c.due(Timestamp(NOW.0 + 1000)).is_none());
}

#[test]
fn rollback_disables_what_no_longer_fits_the_old_settings() {
    let mut c = core();
    let mut s = Settings::of(&c.config);
    s.lan.subnets = vec!["10.0.0.0/24".parse::<Ipv4Net>().unwrap()];
    // Make the config fit the new subnet first, then change settings on trial.
    c.config.forwards.clear();
    c.config.triggers.clear();
    c.config.dhcp = None;
    settings_on_trial(&mut c, s);
    let mut f = forward("tenten", 4000);
    f.internal_host = "10.0.0.5".parse().unwrap();
    enact(&mut c, Edit::AddForward(f), NOW).unwrap();
    let p = c.due(Timestamp(NOW.0 + 61)).unwrap();
    assert!(!p.config.forwards[0].enabled);
    assert!(p.event.unwrap().detail.contains("tenten"));
}

#[test]
fn restore_applies_forwards_now_and_settings_on_trial() {
    let mut c = core();
    let mut backup = base();
    backup.forwards.truncate(1);
    backup.management.http_port = 8088;
    enact(&mut c, Edit::Restore(Box::new(backup)), NOW).unwrap();
    assert_eq!(c.config.forwards.len(), 1);
    assert_eq!(c.trial.as_ref().unwrap().previous.management.http_port, 80);
    // A plain replace (the CLI) ends any trial: it states the whole intent.
    enact(&mut c, Edit::Replace(Box::new(base())), NOW).unwrap();
    assert!(c.trial.is_none());
}

#[test]
fn expiry_removes_the_forward_and_wakes_on_time() {
    let mut c = core();
    c.config.forwards[0].expires_at = Some(Timestamp(NOW.0 + 30));
    assert_eq!(c.next_wake(NOW), Some(Timestamp(NOW.0 + 30)));
    assert!(c.due(Timestamp(NOW.0 + 29)).is_none());
    let p = c.due(Timestamp(NOW.0 + 30)).unwrap();
    assert_eq!(p.event.as_ref().unwrap().target, "web");
    assert!(p.config.forwards.iter().all(|f| f.name != "web"));
}

#[test]
fn an_edit_is_not_refused_because_another_forward_just_expired() {
    let mut c = core();
    c.config.forwards[0].expires_at = Some(Timestamp(NOW.0 + 1));
    let p = c
        .propose(
            Edit::AddForward(forward("new", 4444)),
            Timestamp(NOW.0 + 5),
            60,
        )
        .unwrap();
    assert!(p.config.forwards.iter().all(|f| f.name != "web"));
}

#[test]
fn commit_leaves_safe_mode() {
    let mut c = Core::new(base(), None, Health::SafeMode { reason: "x".into() });
    enact(&mut c, Edit::Replace(Box::new(base())), NOW).unwrap();
    assert_eq!(c.health, Health::Ok);
}

/// A forward added during a trial to a host in
/// a subnet the trial added is disabled by the rollback, but a disabled forward is still
/// validated against the LAN subnets, so the rollback proposal never validates: the owner
/// retries it every second, the trial's settings stay in force past their deadline.
#[test]
fn a_rollback_that_disables_a_misfit_validates_so_the_trial_ends() {
    let mut c = core();
    let mut s = Settings::of(&c.config);
    // The trial *adds* a subnet (the usual "new VLAN" change); existing forwards still fit.
    s.lan
        .subnets
        .push("10.9.0.0/16".parse::<Ipv4Net>().unwrap());
    settings_on_trial(&mut c, s);
    let mut f = forward("tenten", 4000);
    f.internal_host = "10.9.0.5".parse().unwrap();
    enact(&mut c, Edit::AddForward(f), NOW).unwrap();
    let later = Timestamp(NOW.0 + 61);
    let p = c.due(later).expect("rollback due");
    let report = validate(&p.config, later);
    assert!(
        !report.has_errors(),
        "the rollback proposal cannot be installed, so the trial never ends:\n{report}"
    );
}

/// A port conflict alone is fixed by disabling.
#[test]
fn a_rollback_with_only_a_port_conflict_validates() {
    // The UI port moves on trial, a forward takes the old UI port, the rollback disables
    // it and the result validates.
    let mut c = core();
    let s = settings_with_port(&c, 8081);
    settings_on_trial(&mut c, s);
    enact(&mut c, Edit::AddForward(forward("web80", 80)), NOW).unwrap();
    let later = Timestamp(NOW.0 + 61);
    let p = c.due(later).expect("rollback due");
    let report = validate(&p.config, later);
    assert!(!report.has_errors(), "{report}");
}

/// The trial adds a subnet; during it the owner reserves an address there (or moves the
/// pool there). The rollback puts the old subnets back, disables misfit forwards and
/// triggers, but leaves the `dhcp` section, which no longer fits: the proposal never
/// validates, the owner retries it every second and the untested settings stay in force
/// past their deadline.
#[test]
fn a_rollback_with_a_reservation_in_the_trials_subnet_validates_so_the_trial_ends() {
    let mut c = core();
    let mut s = Settings::of(&c.config);
    s.lan
        .subnets
        .push("10.9.0.0/16".parse::<Ipv4Net>().unwrap());
    settings_on_trial(&mut c, s);
    let mut dhcp = c
        .config
        .dhcp
        .clone()
        .expect("the example has a dhcp section");
    let mut r = dhcp.reservations[0].clone();
    r.name = "camera".into();
    r.mac = "02:00:00:00:00:99".parse().unwrap();
    r.address = "10.9.0.5".parse().unwrap();
    dhcp.reservations.push(r);
    enact(
        &mut c,
        Edit::Dhcp {
            if_match: None,
            dhcp: Some(Box::new(dhcp)),
        },
        NOW,
    )
    .unwrap();
    let later = Timestamp(NOW.0 + 61);
    let p = c.due(later).expect("rollback due");
    let report = validate(&p.config, later);
    assert!(
        !report.has_errors(),
        "the rollback proposal cannot be installed, so the trial never ends:\n{report}"
    );
}
