//! The storage layer against both backends: every test runs once on an
//! in-memory SQLite database and once on PostgreSQL in a fresh schema of its
//! own (`BUNTING_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped afterwards.

use bunting_core::model::{Prerequisite, Rule, Segment};
use bunting_core::{Engine, Serve};
use bunting_defs::{SnapshotOptions, Syntax, load};
use bunting_origin::store::{
    Actor, AuditFault, AuditQuery, ConfigSpec, FlagSpec, Store, StoreError,
};
use serde_json::json;

use crate::common::world::World;

both!(
    crud_hierarchy,
    flags_and_configs,
    stale_versions_conflict,
    duplicate_keys,
    invalid_writes_roll_back,
    snapshot_round_trip,
    import_round_trip,
    audit_chain,
    tamper_edit,
    tamper_delete,
    tamper_delete_tail,
    tamper_reorder,
    audit_pagination,
    not_found,
    cascade_deletes_are_audited,
);

fn ana() -> Actor {
    Actor::new("ana").request("req-1")
}

/// An organization, a project and two environments.
async fn tree(s: &Store) -> (i64, i64, i64) {
    let w = World::acme_by(s, ana()).await;
    let stg = s
        .create_environment(&w.actor, w.project, "staging", "Staging")
        .await
        .unwrap();
    (w.project, w.env, stg.id)
}

async fn crud_hierarchy(s: Store) {
    let org = s.create_org(&ana(), "acme", "Acme").await.unwrap();
    assert_eq!(org.version, 1);
    assert_eq!(s.org(org.id).await.unwrap(), org);
    let org = s.rename_org(&ana(), org.id, 1, "Acme Inc").await.unwrap();
    assert_eq!((org.name.as_str(), org.version), ("Acme Inc", 2));
    let p = s
        .create_project(&ana(), org.id, "web", "Web")
        .await
        .unwrap();
    let p2 = s
        .create_project(&ana(), org.id, "api", "API")
        .await
        .unwrap();
    let keys: Vec<_> = s
        .projects(org.id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(keys, ["api", "web"]);
    let p = s.rename_project(&ana(), p.id, 1, "Website").await.unwrap();
    assert_eq!(p.version, 2);
    let e = s
        .create_environment(&ana(), p.id, "production", "Prod")
        .await
        .unwrap();
    let e = s
        .rename_environment(&ana(), e.id, 1, "Production")
        .await
        .unwrap();
    assert_eq!((e.name.as_str(), e.version), ("Production", 2));
    assert_eq!(s.environments(p.id).await.unwrap(), vec![e.clone()]);
    s.delete_environment(&ana(), e.id, 2).await.unwrap();
    assert!(s.environments(p.id).await.unwrap().is_empty());
    s.delete_project(&ana(), p2.id, 1).await.unwrap();
    assert_eq!(s.projects(org.id).await.unwrap().len(), 1);
    s.delete_org(&ana(), org.id, 2).await.unwrap();
    assert!(s.orgs().await.unwrap().is_empty());
    // Cascade: the project went with its organization.
    assert!(matches!(
        s.project(p.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.verify_audit().await.unwrap().is_ok());
}

async fn flags_and_configs(s: Store) {
    let (p, prod, stg) = tree(&s).await;
    let mut spec = FlagSpec::boolean("dark-mode");
    spec.description = Some("Dark UI".into());
    spec.tags = vec!["ui".into()];
    let f = s.create_flag(&ana(), p, &spec).await.unwrap();
    assert_eq!(f.spec, spec);
    assert_eq!(s.flag_by_key(p, "dark-mode").await.unwrap(), f);
    // A default configuration in every environment, and in new ones.
    for env in [prod, stg] {
        let c = s.flag_config(f.id, env).await.unwrap();
        assert!(!c.spec.enabled);
        assert_eq!(c.spec.fallthrough, Serve::Variant("off".into()));
    }
    let dev = s.create_environment(&ana(), p, "dev", "Dev").await.unwrap();
    assert_eq!(s.flag_config(f.id, dev.id).await.unwrap().version, 1);

    spec.owner = Some("ui-team".into());
    let f2 = s.update_flag(&ana(), f.id, 1, &spec).await.unwrap();
    assert_eq!((f2.version, f2.spec.owner.as_deref()), (2, Some("ui-team")));

    let on = ConfigSpec {
        enabled: true,
        rules: Vec::new(),
        fallthrough: Serve::Variant("on".into()),
        prerequisites: Vec::new(),
    };
    let c = s
        .update_flag_config(&ana(), f.id, prod, 1, &on)
        .await
        .unwrap();
    assert_eq!((c.version, c.spec.enabled), (2, true));
    assert!(!s.flag_config(f.id, stg).await.unwrap().spec.enabled);

    s.delete_flag(&ana(), f.id, 2).await.unwrap();
    assert!(s.flags(p).await.unwrap().is_empty());
    assert!(matches!(
        s.flag_config(f.id, prod).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn stale_versions_conflict(s: Store) {
    let (p, prod, _) = tree(&s).await;
    let org = s.orgs().await.unwrap().remove(0);
    s.rename_org(&ana(), org.id, 1, "A").await.unwrap();
    let e = s.rename_org(&ana(), org.id, 1, "B").await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict { current: 2 }), "{e:?}");
    assert!(matches!(
        s.delete_org(&ana(), org.id, 1).await,
        Err(StoreError::Conflict { current: 2 })
    ));

    let f = s
        .create_flag(&ana(), p, &FlagSpec::boolean("x"))
        .await
        .unwrap();
    s.update_flag(&ana(), f.id, 1, &f.spec).await.unwrap();
    assert!(matches!(
        s.update_flag(&ana(), f.id, 1, &f.spec).await,
        Err(StoreError::Conflict { current: 2 })
    ));
    assert!(matches!(
        s.delete_flag(&ana(), f.id, 1).await,
        Err(StoreError::Conflict { current: 2 })
    ));
    let c = s.flag_config(f.id, prod).await.unwrap();
    s.update_flag_config(&ana(), f.id, prod, 1, &c.spec)
        .await
        .unwrap();
    assert!(matches!(
        s.update_flag_config(&ana(), f.id, prod, 1, &c.spec).await,
        Err(StoreError::Conflict { current: 2 })
    ));
    let seg = segment("staff");
    let sr = s.create_segment(&ana(), prod, &seg).await.unwrap();
    s.update_segment(&ana(), sr.id, 1, &seg).await.unwrap();
    assert!(matches!(
        s.update_segment(&ana(), sr.id, 1, &seg).await,
        Err(StoreError::Conflict { current: 2 })
    ));
    // The failed writes left no audit entries and the chain intact.
    let report = s.verify_audit().await.unwrap();
    assert!(report.is_ok());
    assert_eq!(report.entries, 4 + 1 + 1 + 1 + 1 + 1 + 1);
}

fn segment(key: &str) -> Segment {
    Segment {
        key: key.into(),
        included: vec!["user-1".into()],
        excluded: Vec::new(),
        condition: Some(r#"email ends_with "@acme.test""#.into()),
        description: None,
    }
}

async fn duplicate_keys(s: Store) {
    let (p, prod, _) = tree(&s).await;
    let dup = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Duplicate { .. }));
    assert!(dup(s.create_org(&ana(), "acme", "Again").await.map(|_| ())));
    let org = s.orgs().await.unwrap().remove(0);
    assert!(dup(s
        .create_project(&ana(), org.id, "web", "Web")
        .await
        .map(|_| ())));
    // The same key in another organization is fine.
    let other = s.create_org(&ana(), "globex", "Globex").await.unwrap();
    s.create_project(&ana(), other.id, "web", "Web")
        .await
        .unwrap();
    assert!(dup(s
        .create_environment(&ana(), p, "production", "P")
        .await
        .map(|_| ())));
    s.create_flag(&ana(), p, &FlagSpec::boolean("x"))
        .await
        .unwrap();
    let e = s
        .create_flag(&ana(), p, &FlagSpec::boolean("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Duplicate { entity: "flag", key } if key == "x"),
        "{e:?}"
    );
    let y = s
        .create_flag(&ana(), p, &FlagSpec::boolean("y"))
        .await
        .unwrap();
    assert!(dup(s
        .update_flag(&ana(), y.id, 1, &FlagSpec::boolean("x"))
        .await
        .map(|_| ())));
    s.create_segment(&ana(), prod, &segment("staff"))
        .await
        .unwrap();
    assert!(dup(s
        .create_segment(&ana(), prod, &segment("staff"))
        .await
        .map(|_| ())));
    assert!(s.verify_audit().await.unwrap().is_ok());
}

async fn invalid_writes_roll_back(s: Store) {
    let (p, prod, _) = tree(&s).await;
    let before = s.verify_audit().await.unwrap();
    let e = s.create_org(&ana(), "", "Empty").await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(p) if p[0].path == "key"),
        "{e:?}"
    );
    let mut bad = FlagSpec::boolean("x");
    bad.off_variant = "nope".into();
    bad.variants.insert("str".into(), json!("text"));
    let Err(StoreError::Invalid(problems)) = s.create_flag(&ana(), p, &bad).await else {
        panic!("expected Invalid")
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    // A configuration the engine rejects: unknown variant, bad condition.
    let f = s
        .create_flag(&ana(), p, &FlagSpec::boolean("x"))
        .await
        .unwrap();
    let env_before = s.environment(prod).await.unwrap();
    let cfg = ConfigSpec {
        enabled: true,
        rules: vec![Rule {
            id: Some("r".into()),
            description: None,
            condition: "plan ==".into(),
            serve: Serve::Variant("maybe".into()),
        }],
        fallthrough: Serve::Variant("on".into()),
        prerequisites: Vec::new(),
    };
    let Err(StoreError::Invalid(problems)) =
        s.update_flag_config(&ana(), f.id, prod, 1, &cfg).await
    else {
        panic!("expected Invalid")
    };
    assert!(problems.len() >= 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .all(|p| p.path.starts_with("production: flags[0]")),
        "{problems:?}"
    );
    // Rolled back: configuration, snapshot version and audit log unchanged.
    assert_eq!(s.flag_config(f.id, prod).await.unwrap().version, 1);
    assert_eq!(s.environment(prod).await.unwrap(), env_before);
    let after = s.verify_audit().await.unwrap();
    assert!(after.is_ok());
    assert_eq!(after.entries, before.entries + 1);
}

async fn snapshot_round_trip(s: Store) {
    let (p, prod, stg) = tree(&s).await;
    let v0 = s.environment(prod).await.unwrap().snapshot_version;
    let mut plan = FlagSpec::boolean("plan");
    plan.flag_type = bunting_core::FlagType::String;
    plan.variants = [("free".into(), json!("free")), ("pro".into(), json!("pro"))].into();
    plan.off_variant = "free".into();
    let plan = s.create_flag(&ana(), p, &plan).await.unwrap();
    let checkout = s
        .create_flag(&ana(), p, &FlagSpec::boolean("new-checkout"))
        .await
        .unwrap();
    s.create_segment(&ana(), prod, &segment("staff"))
        .await
        .unwrap();
    s.update_flag_config(
        &ana(),
        plan.id,
        prod,
        1,
        &ConfigSpec {
            enabled: true,
            rules: Vec::new(),
            fallthrough: Serve::Variant("pro".into()),
            prerequisites: Vec::new(),
        },
    )
    .await
    .unwrap();
    s.update_flag_config(
        &ana(),
        checkout.id,
        prod,
        1,
        &ConfigSpec {
            enabled: true,
            rules: vec![Rule {
                id: Some("staff".into()),
                description: None,
                condition: r#"segment("staff")"#.into(),
                serve: Serve::Variant("on".into()),
            }],
            fallthrough: Serve::Variant("off".into()),
            prerequisites: vec![Prerequisite {
                flag: "plan".into(),
                variant: "pro".into(),
            }],
        },
    )
    .await
    .unwrap();
    let env = s.environment(prod).await.unwrap();
    assert_eq!(env.snapshot_version, v0 + 5);
    let snap = s.snapshot(prod).await.unwrap();
    // The edge name: unique across organizations and projects.
    assert_eq!(snap.environment, "acme/web/production");
    assert_eq!(snap.version, env.snapshot_version as u64);
    assert_eq!(
        snap.flags
            .iter()
            .map(|f| f.key.as_str())
            .collect::<Vec<_>>(),
        ["new-checkout", "plan"]
    );
    let engine = Engine::from_snapshot(&snap).unwrap();
    let staff = engine.evaluate("new-checkout", &json!({"targetingKey": "user-1"}), 0);
    assert_eq!(staff.variant.as_deref(), Some("on"));
    let other = engine.evaluate(
        "new-checkout",
        &json!({"targetingKey": "user-2", "email": "x@y.z"}),
        0,
    );
    assert_eq!(other.variant.as_deref(), Some("off"));
    assert_eq!(
        engine.evaluate("plan", &json!({}), 0).value.as_deref(),
        Some(&json!("pro"))
    );
    // Through JSON and back, checksum intact.
    let text = serde_json::to_string(&snap).unwrap();
    let parsed = bunting_core::snapshot::parse_json(&text).unwrap();
    assert!(Engine::from_snapshot(&parsed).is_ok());
    // Staging is untouched: everything off.
    let st = Engine::from_snapshot(&s.snapshot(stg).await.unwrap()).unwrap();
    assert_eq!(
        st.evaluate("new-checkout", &json!({"targetingKey": "user-1"}), 0)
            .variant
            .as_deref(),
        Some("off")
    );
    // A prerequisite cannot be deleted from under its dependant.
    assert!(matches!(
        s.delete_flag(&ana(), plan.id, 1).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn import_round_trip(s: Store) {
    let src = include_str!("../../../examples/flags.yaml");
    let defs = load(src, Syntax::Yaml).unwrap();
    let org = s.create_org(&ana(), "acme", "Acme").await.unwrap();
    let p = s
        .create_project(&ana(), org.id, "shop", "Shop")
        .await
        .unwrap();
    let sum = s.import(&ana(), p.id, &defs).await.unwrap();
    assert!(
        sum.flags_created > 0 && sum.environments_created > 0,
        "{sum:?}"
    );
    for env in s.environments(p.id).await.unwrap() {
        let stored = s.snapshot(env.id).await.unwrap();
        Engine::from_snapshot(&stored).unwrap();
        let expected = defs
            .snapshot(
                &env.key,
                &SnapshotOptions::new(stored.version, stored.generated_at.clone()),
            )
            .unwrap();
        let mut flags = expected.flags.clone();
        flags.sort_by(|a, b| a.key.cmp(&b.key));
        let mut segments = expected.segments.clone();
        segments.sort_by(|a, b| a.key.cmp(&b.key));
        let mut layers = expected.layers.clone();
        layers.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(stored.flags, flags, "{}", env.key);
        assert_eq!(stored.segments, segments, "{}", env.key);
        assert_eq!(stored.layers, layers, "{}", env.key);
    }
    // Importing the same file again changes nothing.
    let again = s.import(&ana(), p.id, &defs).await.unwrap();
    assert_eq!(again, Default::default());
    assert!(s.verify_audit().await.unwrap().is_ok());
}

async fn audit_chain(s: Store) {
    let (p, _, _) = tree(&s).await;
    let f = s
        .create_flag(&Actor::new("bob"), p, &FlagSpec::boolean("x"))
        .await
        .unwrap();
    s.update_flag(&Actor::new("bob"), f.id, 1, &FlagSpec::boolean("x2"))
        .await
        .unwrap();
    s.delete_flag(&Actor::new("bob"), f.id, 2).await.unwrap();
    let report = s.verify_audit().await.unwrap();
    assert_eq!(report.entries, 7);
    assert!(report.is_ok());
    let page = s.audit_log(&AuditQuery::default()).await.unwrap();
    let e = &page.entries;
    assert_eq!(e.len(), 7);
    assert_eq!(page.next, None);
    assert_eq!(e[0].prev_hash, bunting_origin::store::GENESIS_HASH);
    for w in e.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    assert_eq!(report.head_hash, e[6].hash);
    assert_eq!(
        (e[0].actor.as_str(), e[0].request_id.as_deref()),
        ("ana", Some("req-1"))
    );
    assert_eq!(
        (
            e[0].action.as_str(),
            e[0].entity_type.as_str(),
            e[0].entity_key.as_str()
        ),
        ("create", "organization", "acme")
    );
    assert!(e[0].before.is_none());
    let upd = &e[5];
    assert_eq!((upd.action.as_str(), upd.entity_id), ("update", f.id));
    let before: serde_json::Value = serde_json::from_str(upd.before.as_deref().unwrap()).unwrap();
    let after: serde_json::Value = serde_json::from_str(upd.after.as_deref().unwrap()).unwrap();
    assert_eq!(
        (before["key"].as_str(), after["key"].as_str()),
        (Some("x"), Some("x2"))
    );
    assert_eq!(after["version"], 2);
    assert!(e[6].after.is_none() && e[6].before.is_some());
    assert_eq!(e[6].actor, "bob");
}

/// Five entries to tamper with.
async fn five(s: &Store) {
    tree(s).await;
    let org = s.orgs().await.unwrap().remove(0);
    s.rename_org(&ana(), org.id, 1, "Acme 2").await.unwrap();
    assert_eq!(s.verify_audit().await.unwrap().entries, 5);
}

async fn raw(s: &Store, sql: &str) {
    sqlx::raw_sql(sql).execute(s.pool()).await.unwrap();
}

async fn tamper_edit(s: Store) {
    five(&s).await;
    raw(&s, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").await;
    assert_eq!(
        s.verify_audit().await.unwrap().first_bad,
        Some((3, AuditFault::HashMismatch))
    );
    // Re-hashing the edited entry does not help: the next link breaks.
    let e = s
        .audit_log(&AuditQuery {
            after_seq: 2,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .entries
        .remove(0);
    let hash = e.compute_hash();
    raw(
        &s,
        &format!("UPDATE audit_log SET hash = '{hash}' WHERE seq = 3"),
    )
    .await;
    assert_eq!(
        s.verify_audit().await.unwrap().first_bad,
        Some((4, AuditFault::BrokenLink))
    );
}

async fn tamper_delete(s: Store) {
    five(&s).await;
    raw(&s, "DELETE FROM audit_log WHERE seq = 2").await;
    assert_eq!(
        s.verify_audit().await.unwrap().first_bad,
        Some((2, AuditFault::Gap))
    );
}

async fn tamper_delete_tail(s: Store) {
    five(&s).await;
    raw(&s, "DELETE FROM audit_log WHERE seq = 5").await;
    assert_eq!(
        s.verify_audit().await.unwrap().first_bad,
        Some((5, AuditFault::Truncated))
    );
}

async fn tamper_reorder(s: Store) {
    five(&s).await;
    raw(&s, "UPDATE audit_log SET seq = -1 WHERE seq = 2").await;
    raw(&s, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    raw(&s, "UPDATE audit_log SET seq = 3 WHERE seq = -1").await;
    assert_eq!(
        s.verify_audit().await.unwrap().first_bad,
        Some((2, AuditFault::BrokenLink))
    );
}

async fn audit_pagination(s: Store) {
    let (p, _, _) = tree(&s).await; // 4 entries by ana
    let bob = Actor::new("bob");
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            s.create_flag(&bob, p, &FlagSpec::boolean(&format!("f{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    // bob's 7 entries, 3 a page.
    let mut q = AuditQuery {
        actor: Some("bob".into()),
        limit: 3,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = s.audit_log(&q).await.unwrap();
        pages += 1;
        seen.extend(page.entries.iter().map(|e| e.entity_id));
        match page.next {
            Some(n) => q.after_seq = n,
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    // By entity.
    let q = AuditQuery {
        entity_type: Some("flag".into()),
        entity_id: Some(ids[2]),
        ..Default::default()
    };
    let page = s.audit_log(&q).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].entity_key, "f2");
    // By time: everything is after the first entry's time, nothing after now.
    let all = s.audit_log(&AuditQuery::default()).await.unwrap().entries;
    assert_eq!(all.len(), 11);
    let q = AuditQuery {
        from: Some(all[0].at.clone()),
        actor: Some("ana".into()),
        ..Default::default()
    };
    assert_eq!(s.audit_log(&q).await.unwrap().entries.len(), 4);
    let q = AuditQuery {
        from: Some("9999".into()),
        ..Default::default()
    };
    assert!(s.audit_log(&q).await.unwrap().entries.is_empty());
    let q = AuditQuery {
        until: Some(all[0].at.clone()),
        ..Default::default()
    };
    assert!(s.audit_log(&q).await.unwrap().entries.is_empty());
}

async fn not_found(s: Store) {
    let nf = |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound { .. }));
    assert!(nf(s.org(42).await.map(|_| ())));
    assert!(nf(s.create_project(&ana(), 42, "p", "P").await.map(|_| ())));
    assert!(nf(s
        .create_flag(&ana(), 42, &FlagSpec::boolean("x"))
        .await
        .map(|_| ())));
    assert!(nf(s
        .update_flag(&ana(), 42, 1, &FlagSpec::boolean("x"))
        .await
        .map(|_| ())));
    assert!(nf(s.snapshot(42).await.map(|_| ())));
    assert!(nf(s.flag_by_key(42, "x").await.map(|_| ())));
    assert_eq!(s.verify_audit().await.unwrap().entries, 0);
}

/// Deleting an organization removes everything under it; each removed
/// entity gets its own audit entry with its last state, children first.
async fn cascade_deletes_are_audited(s: Store) {
    let (project, prod, _stg) = tree(&s).await;
    let org_id = s.project(project).await.unwrap().org_id;
    let f = s
        .create_flag(&ana(), project, &FlagSpec::boolean("dark-mode"))
        .await
        .unwrap();
    s.create_segment(
        &ana(),
        prod,
        &Segment {
            key: "staff".into(),
            included: vec!["u1".into()],
            excluded: vec![],
            condition: None,
            description: None,
        },
    )
    .await
    .unwrap();
    s.create_token(
        &ana().in_org(org_id),
        org_id,
        "ci",
        bunting_origin::store::Role::Viewer,
    )
    .await
    .unwrap();
    let before = s.verify_audit().await.unwrap().entries as i64;
    // A stale version deletes nothing and audits nothing.
    assert!(matches!(
        s.delete_org(&ana(), org_id, 9).await,
        Err(StoreError::Conflict { current: 1 })
    ));
    assert_eq!(s.verify_audit().await.unwrap().entries as i64, before);
    s.delete_org(&ana(), org_id, 1).await.unwrap();
    let page = s
        .audit_log(&AuditQuery {
            after_seq: before,
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let deleted: Vec<(String, String)> = page
        .entries
        .iter()
        .map(|e| {
            assert_eq!(e.action, "delete");
            assert!(e.before.is_some() && e.after.is_none());
            (e.entity_type.clone(), e.entity_key.clone())
        })
        .collect();
    let expect = [
        ("flagConfig", "dark-mode/production"),
        ("segment", "staff"),
        ("environment", "production"),
        ("flagConfig", "dark-mode/staging"),
        ("environment", "staging"),
        ("flag", "dark-mode"),
        ("project", "web"),
        ("token", "ci"),
        ("organization", "acme"),
    ];
    assert_eq!(
        deleted,
        expect
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    assert!(s.verify_audit().await.unwrap().is_ok());
    assert!(matches!(
        s.flag(f.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// The pool may drop its connection (sqlx does when a query's future is
/// cancelled, e.g. a browser aborting a fetch); an in-memory database must
/// keep its data when the pool opens a new one.
#[tokio::test]
async fn memory_database_survives_a_closed_connection() {
    let s = Store::open("sqlite::memory:").await.unwrap();
    let org = s.create_org(&ana(), "acme", "Acme").await.unwrap();
    let conn = s.pool().acquire().await.unwrap();
    conn.close().await.unwrap();
    let orgs = s.orgs().await.unwrap();
    assert_eq!(orgs.iter().map(|o| o.id).collect::<Vec<_>>(), vec![org.id]);

    // Two stores in one process are two databases.
    let other = Store::open("sqlite::memory:").await.unwrap();
    assert!(other.orgs().await.unwrap().is_empty());
}
