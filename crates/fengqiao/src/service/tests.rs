//! Tests of the service layer against a real store in a temporary node directory.

use chrono::{TimeDelta, TimeZone, Utc};
use fengqiao_case::{
    Channel, Location, MatterType, Petitioner, ReplyOutcome, Satisfaction, WarningGrade,
};

use super::*;

const VILLAGE: &str = "430702001002";
const OPERATOR: &str = "李建国";

/// The account the tests act as: both case roles, under the operator name they always used.
fn tester() -> fengqiao_accounts::Actor {
    fengqiao_accounts::Actor {
        operator: OPERATOR.to_owned(),
        roles: fengqiao_accounts::RoleSet::of(&[
            fengqiao_accounts::Role::Operator,
            fengqiao_accounts::Role::Supervisor,
        ]),
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 2, 0, 0).unwrap()
}

fn village_options() -> InitOptions {
    InitOptions {
        name: "芦荻山村调解室".into(),
        tier: Tier::Village,
        region_code: VILLAGE.into(),
        listen: None,
        parent: None,
        lan_names: Vec::new(),
    }
}

fn open_village() -> (tempfile::TempDir, Node) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("village");
    init_node(&dir, village_options()).unwrap();
    let node = Node::open(&dir).unwrap();
    (temp, node)
}

/// A village holding one registered case (拖欠工资), and the case's number.
fn village_with_a_case() -> (tempfile::TempDir, Node, CaseId) {
    let (temp, node) = open_village();
    let number = node
        .register(&tester(), now(), registration(Category::WageArrears))
        .unwrap()
        .header
        .number;
    (temp, node, number)
}

fn registration(category: Category) -> RegisterCase {
    RegisterCase {
        backdated_reason: None,
        number: None,
        registered_at: None,
        channel: Channel::Visit,
        petitioners: vec![Petitioner {
            name: "王秀英".into(),
            id_number: "430702198503120029".into(),
            id_type: Default::default(),
            phone: "13807361234".into(),
            address: "芦荻山乡 3 组".into(),
            representative: false,
        }],
        headcount: 1,
        respondent: "常德市台秤厂".into(),
        category,
        matter_type: MatterType::Appeal,
        litigation_related: false,
        summary: "反映原单位拖欠工资".into(),
        location: Location {
            region_code: VILLAGE.into(),
            village: "芦荻山村".into(),
            grid: "第三网格".into(),
            grid_worker: "李建国".into(),
        },
        ownership: Default::default(),
    }
}

fn event(kind: EventKind) -> AppendEvent {
    AppendEvent {
        backdated_reason: None,
        kind,
        at: None,
    }
}

fn import_row(line: u64, number: Option<&str>, history: Vec<AppendEvent>) -> ImportRow {
    let mut case = registration(Category::LandRequisition);
    case.number = number.map(str::to_owned);
    case.registered_at = Some(Utc.with_ymd_and_hms(2026, 3, 1, 1, 30, 0).unwrap());
    ImportRow {
        line,
        case,
        history,
        repeat: 0,
    }
}

fn at(day: u32) -> Option<DateTime<Utc>> {
    Some(Utc.with_ymd_and_hms(2026, 3, day, 2, 0, 0).unwrap())
}

#[test]
fn init_creates_key_and_config_and_refuses_to_run_twice() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("village");
    let config = init_node(&dir, village_options()).unwrap();
    assert_eq!(config.node.region_code, VILLAGE);
    assert!(dir.join("node.key").exists());
    assert_eq!(config::load(&dir).unwrap(), config);

    let again = format!("{:#}", init_node(&dir, village_options()).unwrap_err());
    assert!(again.contains("already a node directory"), "{again}");

    let bad_dir = temp.path().join("bad");
    let mut bad = village_options();
    bad.region_code = "430702".into();
    let message = format!("{:#}", init_node(&bad_dir, bad).unwrap_err());
    assert!(message.contains("village node needs 12"), "{message}");
    assert!(
        !bad_dir.exists(),
        "nothing is created for an invalid config"
    );
}

#[test]
fn a_second_open_of_the_same_node_is_refused_clearly() {
    let (temp, node) = open_village();
    let message = format!(
        "{:#}",
        Node::open(&temp.path().join("village")).unwrap_err()
    );
    assert!(message.contains("in use by another process"), "{message}");
    drop(node);
    Node::open(&temp.path().join("village")).unwrap();
}

#[test]
fn info_names_the_node() {
    let (_temp, node) = open_village();
    let info = node.info();
    assert_eq!(info.node_id, node.identity().node_id());
    assert_eq!(info.tier, Tier::Village);
    assert_eq!(info.region_code, VILLAGE);
    assert_eq!(info.case_count, 0);
}

#[test]
fn register_assigns_sequential_numbers_per_region_and_year() {
    let (_temp, node) = open_village();
    let first = node
        .register(&tester(), now(), registration(Category::WageArrears))
        .unwrap();
    let second = node
        .register(&tester(), now(), registration(Category::WageArrears))
        .unwrap();
    assert_eq!(first.header.number, "430702001002-2026-000001");
    assert_eq!(second.header.number, "430702001002-2026-000002");
    assert_eq!(first.state.status, Status::Registered);
    assert_eq!(first.state.holder, node.node_id());
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].operator, OPERATOR);
    assert_eq!(first.events[0].id.len(), 32);

    // 2025-12-31 20:00 UTC is already 2026 in China. Recorded on 2 January, with a reason.
    let second_of_january = Utc.with_ymd_and_hms(2026, 1, 2, 1, 0, 0).unwrap();
    let mut new_year = registration(Category::Labour);
    new_year.registered_at = Some(Utc.with_ymd_and_hms(2025, 12, 31, 20, 0, 0).unwrap());
    new_year.backdated_reason = Some("元旦值班登记补录".to_owned());
    let view = node
        .register(&tester(), second_of_january, new_year)
        .unwrap();
    assert_eq!(view.header.number, "430702001002-2026-000003");
    let mut last_year = registration(Category::Labour);
    last_year.registered_at = Some(Utc.with_ymd_and_hms(2025, 12, 31, 12, 0, 0).unwrap());
    last_year.backdated_reason = Some("元旦值班登记补录".to_owned());
    let view = node
        .register(&tester(), second_of_january, last_year)
        .unwrap();
    assert_eq!(view.header.number, "430702001002-2025-000001");
    assert_eq!(node.info().case_count, 4);
}

#[test]
fn given_numbers_are_checked_and_assigned_numbers_skip_taken_ones() {
    let (_temp, node) = open_village();
    let with_number = |number: &str| {
        let mut request = registration(Category::Family);
        request.number = Some(number.to_owned());
        request
    };
    for (number, expected) in [
        ("430702001002-2026-12", "sequence of 6 digits"),
        ("430702001002-2026-0000001", "sequence of 6 digits"),
        ("430702001002-9999-000001", "year 9999"),
        ("430702001002/2026/000001", "three parts"),
        ("43070200100-2026-000001", "region code"),
        ("430702001002-26-000001", "4-digit year"),
        ("430702001002-2026-000000", "sequence 0"),
        (
            "430702001003-2026-000001",
            "outside this node's jurisdiction",
        ),
    ] {
        let error = node
            .register(&tester(), now(), with_number(number))
            .unwrap_err();
        assert_eq!(error.http_status(), 400, "{number}: {error}");
        assert!(error.to_string().contains(expected), "{number}: {error}");
    }
    node.register(&tester(), now(), with_number("430702001002-2026-000001"))
        .unwrap();
    let duplicate = node
        .register(&tester(), now(), with_number("430702001002-2026-000001"))
        .unwrap_err();
    assert!(matches!(duplicate, ServiceError::AlreadyExists(_)));
    assert_eq!(duplicate.http_status(), 409);

    let assigned = node
        .register(&tester(), now(), registration(Category::Family))
        .unwrap();
    assert_eq!(assigned.header.number, "430702001002-2026-000002");
}

#[test]
fn register_refuses_bad_input_without_using_a_number() {
    let (_temp, node) = open_village();
    let mut no_petitioner = registration(Category::Other);
    no_petitioner.petitioners.clear();
    let error = node.register(&tester(), now(), no_petitioner).unwrap_err();
    assert_eq!(error.http_status(), 400, "{error}");
    assert!(error.to_string().contains("petitioner"), "{error}");

    let mut elsewhere = registration(Category::Other);
    elsewhere.location.region_code = "430702002001".into();
    let error = node.register(&tester(), now(), elsewhere).unwrap_err();
    assert!(error.to_string().contains("jurisdiction"), "{error}");

    let mut future = registration(Category::Other);
    future.registered_at = Some(now() + TimeDelta::days(1));
    let error = node.register(&tester(), now(), future).unwrap_err();
    assert!(error.to_string().contains("in the future"), "{error}");

    let view = node
        .register(&tester(), now(), registration(Category::Other))
        .unwrap();
    assert_eq!(view.header.number, "430702001002-2026-000001");
}

#[test]
fn append_follows_the_lifecycle_and_refusals_carry_its_message() {
    let (_temp, node, number) = village_with_a_case();

    let refused = node
        .append(
            &tester(),
            now(),
            &number,
            event(EventKind::Close {
                resolved: true,
                note: "已解决".into(),
            }),
        )
        .unwrap_err();
    assert!(matches!(refused, ServiceError::Refused(_)), "{refused:?}");
    assert_eq!(refused.http_status(), 409);
    let message = refused.to_string();
    assert!(message.starts_with("cannot close"), "{message}");

    let accepted = node
        .append(&tester(), now(), &number, event(EventKind::Accept {}))
        .unwrap();
    assert_eq!(accepted.state.status, Status::Accepted);
    assert_eq!(accepted.events.len(), 2);
    assert_eq!(accepted.events[1].at, now());
    assert_eq!(accepted.events[1].operator, OPERATOR);
    assert_eq!(
        accepted.events[1].prev.as_deref(),
        Some(accepted.events[0].id.as_str())
    );

    let replied = node
        .append(
            &fengqiao_accounts::Actor {
                operator: "张主任".to_owned(),
                ..tester()
            },
            now(),
            &number,
            event(EventKind::Reply {
                outcome: ReplyOutcome::Support,
                text: "已协调补发".into(),
            }),
        )
        .unwrap();
    assert_eq!(replied.state.status, Status::Replied);
    assert_eq!(replied.events[2].operator, "张主任");

    let missing = node
        .append(
            &tester(),
            now(),
            "430702001002-2026-000999",
            event(EventKind::Accept {}),
        )
        .unwrap_err();
    assert!(matches!(missing, ServiceError::NotFound(_)));
    assert_eq!(missing.http_status(), 404);

    let stored = node.get(Some(OPERATOR), now(), &number).unwrap();
    assert_eq!(stored.events.len(), 3, "the refused close was not stored");
}

#[test]
fn get_records_the_read_in_the_access_log() {
    let (_temp, node, number) = village_with_a_case();
    let view = node.get(Some("王书记"), now(), &number).unwrap();
    assert_eq!(view.header.petitioners[0].name, "王秀英");
    node.get(None, now(), &number).unwrap();

    let log = node.store().access_log_since(0, 10).unwrap();
    assert_eq!(log.len(), 2);
    let first: serde_json::Value = serde_json::from_slice(&log[0].1).unwrap();
    assert_eq!(first["operator"], "王书记");
    assert_eq!(first["case"], number.as_str());
    assert_eq!(first["at"], "2026-03-10T02:00:00Z");
    let second: serde_json::Value = serde_json::from_slice(&log[1].1).unwrap();
    assert!(second["operator"].is_null());
    let text = String::from_utf8_lossy(&log[0].1);
    assert!(!text.contains("王秀英"), "the log holds no personal data");

    let missing = node.get(Some(OPERATOR), now(), "430702001002-2026-000404");
    assert!(matches!(missing, Err(ServiceError::NotFound(_))));
}

#[test]
fn list_filters_and_warns() {
    let (_temp, node) = open_village();
    let mut old = registration(Category::LandRequisition);
    old.registered_at = Some(now() - TimeDelta::days(20));
    old.backdated_reason = Some("纸质登记簿补录".to_owned());
    let old_number = node.register(&tester(), now(), old).unwrap().header.number;
    node.register(&tester(), now(), registration(Category::WageArrears))
        .unwrap();

    let all = node.list(now(), &ListFilter::default()).unwrap();
    assert_eq!(all.len(), 2);

    let land = ListFilter {
        category: Some(Category::LandRequisition),
        ..ListFilter::default()
    };
    let listed = node.list(now(), &land).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].summary.number, old_number);

    let overdue = ListFilter {
        overdue_only: true,
        ..ListFilter::default()
    };
    let listed = node.list(now(), &overdue).unwrap();
    assert_eq!(
        listed.len(),
        1,
        "only the 20-day-old case is past its 15 days"
    );
    assert_eq!(listed[0].summary.number, old_number);
    assert!(
        listed[0]
            .warnings
            .iter()
            .any(|warning| warning.grade >= WarningGrade::Overdue)
    );

    let limited = ListFilter {
        limit: Some(1),
        ..ListFilter::default()
    };
    assert_eq!(node.list(now(), &limited).unwrap().len(), 1);

    let other_village = ListFilter {
        region_prefix: Some("430702001003".into()),
        ..ListFilter::default()
    };
    assert!(node.list(now(), &other_village).unwrap().is_empty());
    let bad_region = ListFilter {
        region_prefix: Some("abc".into()),
        ..ListFilter::default()
    };
    assert_eq!(
        node.list(now(), &bad_region).unwrap_err().http_status(),
        400
    );

    // Warned: read from the deadline index, the same cases as those with any warning.
    let warned = ListFilter {
        warned_only: true,
        ..ListFilter::default()
    };
    for when in [
        now(),
        now() + TimeDelta::days(12),
        now() + TimeDelta::days(13),
    ] {
        let mut listed: Vec<_> = node
            .list(when, &warned)
            .unwrap()
            .into_iter()
            .map(|item| item.summary.number)
            .collect();
        listed.sort();
        let mut expected: Vec<_> = node
            .list(when, &ListFilter::default())
            .unwrap()
            .into_iter()
            .filter(|item| !item.warnings.is_empty())
            .map(|item| item.summary.number)
            .collect();
        expected.sort();
        assert_eq!(listed, expected, "at {when}");
    }
    assert_eq!(node.list(now(), &warned).unwrap().len(), 1);

    // Names: found through the index, never handed out in a listing.
    let named = node
        .cases_with_petitioner_named("秀英")
        .unwrap()
        .expect("a new node's name index is whole");
    assert_eq!(named.len(), 2);
    assert!(named.contains(&old_number));
    assert!(
        node.cases_with_petitioner_named("钱")
            .unwrap()
            .expect("indexed")
            .is_empty()
    );
    assert!(
        all.iter()
            .all(|item| item.summary.petitioner_names.is_empty())
    );

    assert!(node.directives(now(), true).unwrap().is_empty());
}

/// The 台账's pages (`Node::list_page`) against the whole list graded, filtered and sorted here
/// as the console did before: the same cases, the same order (worst grade, then earliest open
/// deadline, then number), the same totals, for each grade, a registration range and a search.
#[test]
fn pages_equal_the_whole_list_graded_and_sorted() {
    let (_temp, node) = open_village();
    // Registered up to 29 days ago and read 10 days on: their 15-day acceptance deadlines are in
    // every grade then, two on the boundaries (预警 from 3 days before, 严重超时 15 days after).
    let when = now() + TimeDelta::days(10);
    for (index, days_ago) in [0, 2, 13, 14, 16, 20, 29, 25, 2, 16, 5]
        .into_iter()
        .enumerate()
    {
        let mut case = registration(if index % 2 == 0 {
            Category::LandRequisition
        } else {
            Category::WageArrears
        });
        if days_ago > 0 {
            case.registered_at = Some(now() - TimeDelta::days(days_ago));
            case.backdated_reason = Some("纸质登记簿补录".to_owned());
        }
        node.register(&tester(), now(), case).unwrap();
    }
    let everything = node.list(when, &ListFilter::default()).unwrap();
    let urgency = |item: &CaseListItem| {
        (
            std::cmp::Reverse(warnings::worst_grade(&item.warnings)),
            summary::earliest_open_deadline(&item.summary).unwrap_or(DateTime::<Utc>::MAX_UTC),
            item.summary.number.clone(),
        )
    };
    let day =
        |days_ago: i64| fengqiao_case::deadlines::local_date(now() - TimeDelta::days(days_ago));
    let mut requests = vec![PageRequest::default()];
    for grade in [
        WarningGrade::Approaching,
        WarningGrade::Overdue,
        WarningGrade::SeriouslyOverdue,
    ] {
        requests.push(PageRequest {
            grade: Some(grade),
            ..PageRequest::default()
        });
    }
    requests.push(PageRequest {
        registered_from: Some(day(20)),
        registered_to: Some(day(13)),
        ..PageRequest::default()
    });
    requests.push(PageRequest {
        text: Some("-2026-00000".to_owned()),
        ..PageRequest::default()
    });
    let mut nonempty = 0;
    for category in [None, Some(Category::WageArrears)] {
        let filter = ListFilter {
            category,
            ..ListFilter::default()
        };
        for request in &requests {
            let mut expected: Vec<&CaseListItem> = everything
                .iter()
                .filter(|item| category.is_none_or(|category| item.summary.category == category))
                .filter(|item| {
                    request.grade.is_none()
                        || warnings::worst_grade(&item.warnings) == request.grade
                })
                .filter(|item| {
                    let registered = item
                        .summary
                        .timeline
                        .registered_at
                        .map(fengqiao_case::deadlines::local_date);
                    request
                        .registered_from
                        .is_none_or(|from| registered >= Some(from))
                        && request
                            .registered_to
                            .is_none_or(|to| registered <= Some(to))
                })
                .filter(|item| {
                    request
                        .text
                        .as_deref()
                        .is_none_or(|text| item.summary.number.contains(text))
                })
                .collect();
            expected.sort_by_key(|item| urgency(item));
            nonempty += usize::from(!expected.is_empty());
            let mut paged = Vec::new();
            for page in 0..5 {
                let (items, total) = node
                    .list_page(
                        when,
                        &filter,
                        &PageRequest {
                            skip: page * 3,
                            take: 3,
                            ..request.clone()
                        },
                    )
                    .unwrap();
                assert_eq!(total, expected.len(), "{category:?} {request:?}");
                paged.extend(items);
            }
            let numbers = |items: Vec<&CaseListItem>| -> Vec<String> {
                items
                    .into_iter()
                    .map(|item| item.summary.number.clone())
                    .collect()
            };
            assert_eq!(
                numbers(paged.iter().collect()),
                numbers(expected),
                "{category:?} {request:?}"
            );
        }
    }
    assert!(nonempty >= 10, "{nonempty}");
}

#[test]
fn import_is_all_or_nothing_and_safe_to_rerun() {
    let (_temp, node) = open_village();
    let closed_history = vec![
        AppendEvent {
            backdated_reason: None,
            kind: EventKind::Accept {},
            at: at(2),
        },
        AppendEvent {
            backdated_reason: None,
            kind: EventKind::Reply {
                outcome: ReplyOutcome::Support,
                text: "已协调补发补偿款".into(),
            },
            at: at(5),
        },
        AppendEvent {
            backdated_reason: None,
            kind: EventKind::Evaluate {
                satisfaction: Satisfaction::BasicallySatisfied,
            },
            at: at(6),
        },
        AppendEvent {
            backdated_reason: None,
            kind: EventKind::Close {
                resolved: true,
                note: String::new(),
            },
            at: at(7),
        },
    ];
    // Closing a case that was never replied to is not a valid history.
    let invalid_history = vec![AppendEvent {
        backdated_reason: None,
        kind: EventKind::Close {
            resolved: true,
            note: String::new(),
        },
        at: at(3),
    }];
    let bad = ImportBatch {
        rows: vec![
            import_row(2, Some("430702001002-2026-000101"), closed_history.clone()),
            import_row(3, Some("430702001002-2026-000102"), invalid_history),
            import_row(4, Some("430702001002-2026-000101"), Vec::new()),
        ],
        dry_run: false,
        import_id: None,
    };
    let reports = node.import(&tester(), now(), bad).unwrap();
    assert_eq!(reports[0].outcome, ImportOutcome::Imported);
    assert_eq!(reports[1].outcome, ImportOutcome::Rejected);
    let why = reports[1].error.as_deref().unwrap();
    assert!(why.starts_with("history[0]: cannot close"), "{why}");
    assert_eq!(reports[1].field.as_deref(), Some("history[0]"));
    assert_eq!(reports[2].outcome, ImportOutcome::Rejected);
    assert!(reports[2].error.as_deref().unwrap().contains("line 2"));
    assert_eq!(node.info().case_count, 0, "nothing written");

    let good = ImportBatch {
        rows: vec![
            import_row(2, Some("430702001002-2026-000101"), closed_history),
            import_row(3, Some("430702001002-2026-000102"), Vec::new()),
            import_row(4, None, Vec::new()),
        ],
        dry_run: true,
        import_id: None,
    };
    let reports = node.import(&tester(), now(), good.clone()).unwrap();
    assert!(
        reports
            .iter()
            .all(|report| report.outcome == ImportOutcome::Imported)
    );
    assert_eq!(node.info().case_count, 0, "a dry run writes nothing");

    let reports = node
        .import(
            &tester(),
            now(),
            ImportBatch {
                dry_run: false,
                ..good.clone()
            },
        )
        .unwrap();
    assert!(
        reports
            .iter()
            .all(|report| report.outcome == ImportOutcome::Imported)
    );
    assert_eq!(
        reports[2].number.as_deref(),
        Some("430702001002-2026-000001")
    );
    assert_eq!(node.info().case_count, 3);
    let closed = node
        .get(Some(OPERATOR), now(), "430702001002-2026-000101")
        .unwrap();
    assert_eq!(closed.state.status, Status::Closed);
    assert_eq!(closed.events.len(), 5);
    assert_eq!(
        closed.state.timeline.registered_at,
        Some(Utc.with_ymd_and_hms(2026, 3, 1, 1, 30, 0).unwrap())
    );

    let rerun = node
        .import(
            &tester(),
            now(),
            ImportBatch {
                rows: good.rows[..2].to_vec(),
                dry_run: false,
                import_id: None,
            },
        )
        .unwrap();
    assert!(
        rerun
            .iter()
            .all(|report| report.outcome == ImportOutcome::AlreadyPresent)
    );
    assert_eq!(node.info().case_count, 3);
}

/// Issue 13 items 6 and 2: a row without a case number is known again on a re-run by its row
/// key, recorded with its case, so a second run (another import id) registers nothing twice;
/// every event the import made carries the mark of the run that made it, and the measures can
/// leave imported cases out.
#[test]
fn rows_without_numbers_are_imported_once_marked_and_can_be_left_out_of_the_measures() {
    let (_temp, node) = open_village();
    let accepted = vec![AppendEvent {
        backdated_reason: None,
        kind: EventKind::Accept {},
        at: at(2),
    }];
    let mut twin = import_row(4, None, Vec::new());
    twin.repeat = 1;
    let rows = vec![
        import_row(2, None, accepted),
        import_row(3, None, Vec::new()),
        twin,
    ];
    let batch = |import_id: &str| ImportBatch {
        rows: rows.clone(),
        dry_run: false,
        import_id: Some(import_id.to_owned()),
    };
    let first = node.import(&tester(), now(), batch("run-1")).unwrap();
    assert!(
        first
            .iter()
            .all(|report| report.outcome == ImportOutcome::Imported),
        "{first:?}"
    );
    let numbers: Vec<String> = first
        .iter()
        .map(|report| report.number.clone().unwrap())
        .collect();
    assert_eq!(node.info().case_count, 3, "identical rows are two cases");

    let again = node.import(&tester(), now(), batch("run-2")).unwrap();
    assert!(
        again
            .iter()
            .all(|report| report.outcome == ImportOutcome::AlreadyImported),
        "{again:?}"
    );
    let numbers_again: Vec<String> = again
        .iter()
        .map(|report| report.number.clone().unwrap())
        .collect();
    assert_eq!(numbers_again, numbers, "each row names the case it became");
    assert_eq!(node.info().case_count, 3);

    // The same content twice in one batch without `repeat` is refused, not silently merged.
    let mut unmarked_twins = rows[1..].to_vec();
    unmarked_twins[1].repeat = 0;
    let refused = node
        .import(
            &tester(),
            now(),
            ImportBatch {
                rows: unmarked_twins,
                dry_run: true,
                import_id: None,
            },
        )
        .unwrap();
    assert_eq!(refused[1].outcome, ImportOutcome::Rejected);
    assert!(
        refused[1].error.as_deref().unwrap().contains("line 3"),
        "{refused:?}"
    );

    let view = node.get(Some(OPERATOR), now(), &numbers[0]).unwrap();
    assert_eq!(view.events.len(), 2);
    for event in &view.events {
        let mark = event
            .imported
            .as_ref()
            .expect("every imported event is marked");
        assert_eq!(mark.import_id, "run-1");
        assert_eq!(mark.row_key, fengqiao_case::import::row_key(&rows[0]));
        assert_eq!(event.operator, OPERATOR);
    }
    assert!(view.state.imported);

    node.register(&tester(), now(), registration(Category::WageArrears))
        .unwrap();
    let counted = |imported| {
        let query = StatsQuery {
            imported,
            ..StatsQuery::default()
        };
        node.stats(now(), &query).unwrap().total.cases
    };
    assert_eq!(counted(ImportedCases::Include), 4);
    assert_eq!(counted(ImportedCases::Exclude), 1);
}

#[test]
fn stats_measure_the_period_and_category() {
    let (_temp, node, number) = village_with_a_case();
    node.append(&tester(), now(), &number, event(EventKind::Accept {}))
        .unwrap();
    node.register(&tester(), now(), registration(Category::Labour))
        .unwrap();

    let all = node.stats(now(), &StatsQuery::default()).unwrap();
    assert_eq!(all.total.cases, 2);
    assert_eq!(all.by_category.len(), 2);
    assert_eq!(all.total.timely_acceptance.numerator, 1);

    let wages = StatsQuery {
        category: Some(Category::WageArrears),
        ..StatsQuery::default()
    };
    assert_eq!(node.stats(now(), &wages).unwrap().total.cases, 1);

    let before = StatsQuery {
        to: Some(now() - TimeDelta::days(1)),
        ..StatsQuery::default()
    };
    assert_eq!(node.stats(now(), &before).unwrap().total.cases, 0);

    let backwards = StatsQuery {
        from: Some(now()),
        to: Some(now() - TimeDelta::days(1)),
        category: None,
        imported: ImportedCases::Include,
    };
    let error = node.stats(now(), &backwards).unwrap_err();
    assert_eq!(error.http_status(), 400);
}

#[test]
fn a_replaced_key_is_noticed() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("village");
    init_node(&dir, village_options()).unwrap();
    drop(Node::open(&dir).unwrap());
    std::fs::remove_file(dir.join("node.key")).unwrap();
    NodeIdentity::generate()
        .unwrap()
        .save_new(&dir.join("node.key"))
        .unwrap();
    let message = format!("{:#}", Node::open(&dir).unwrap_err());
    assert!(message.contains("key file was replaced"), "{message}");
}

#[test]
fn a_standalone_node_has_nobody_above_it_so_supervises_and_takes_over_nothing() {
    let (_temp, node) = open_village();
    let number = node
        .register(&tester(), now(), registration(Category::WageArrears))
        .expect("registers")
        .header
        .number;
    let directive = node
        .append(
            &tester(),
            now(),
            &number,
            event(EventKind::IssueDirective {
                directive: "D1".into(),
                target_node: node.node_id().to_owned(),
                requirement: "七日内报送".into(),
                due: local_date(now()) + TimeDelta::days(7),
                listed: false,
            }),
        )
        .expect_err("the holder does not supervise itself");
    assert!(
        matches!(directive, ServiceError::Forbidden(_)),
        "{directive:?}"
    );
    assert_eq!(directive.http_status(), 403);
    let message = directive.to_string();
    assert!(
        message.contains("only a tier above the holder supervises"),
        "{message}"
    );

    let take_over = node
        .append(
            &tester(),
            now(),
            &number,
            event(EventKind::TakeOver {
                reason: "提级办理".into(),
            }),
        )
        .expect_err("the holder does not take over its own case");
    assert_eq!(take_over.http_status(), 409, "{take_over}");
    let stored = node.get(Some(OPERATOR), now(), &number).expect("reads");
    assert_eq!(stored.events.len(), 1, "nothing refused was stored");
}

#[test]
fn a_persons_role_is_judged_before_the_offices_authority_and_nothing_is_written() {
    let (_temp, node) = open_village();
    let only_operator = fengqiao_accounts::Actor {
        operator: "李调解 (lizt)".to_owned(),
        roles: fengqiao_accounts::RoleSet::of(&[fengqiao_accounts::Role::Operator]),
    };
    let only_admin = fengqiao_accounts::Actor {
        operator: "管理员 (admin)".to_owned(),
        roles: fengqiao_accounts::RoleSet::of(&[fengqiao_accounts::Role::Admin]),
    };
    let refused = node
        .register(&only_admin, now(), registration(Category::WageArrears))
        .unwrap_err();
    assert_eq!(refused.http_status(), 403, "{refused}");
    assert_eq!(node.info().case_count, 0);
    let number = node
        .register(&only_operator, now(), registration(Category::WageArrears))
        .unwrap()
        .header
        .number;
    // Escalating is a supervisor's; the office (the holder) could, so the role refuses it.
    let escalate = event(EventKind::Escalate {
        to_node: "parent".into(),
        reason: "群体性".into(),
    });
    let refused = node
        .append(&only_operator, now(), &number, escalate)
        .unwrap_err();
    assert_eq!(refused.http_status(), 403);
    assert_eq!(
        refused.to_string(),
        "李调解 (lizt) may not escalate: only a supervisor (督查) escalates (上报) (they hold \
         operator)"
    );
    let stored = node.get(None, now(), &number).unwrap();
    assert_eq!(stored.events.len(), 1, "nothing was appended");
}

/// What a node's links measured: a parent `parent_ahead_ms` ahead of this node's clock.
#[derive(Debug)]
struct ParentClock {
    parent_ahead_ms: i64,
}

impl PeerClocks for ParentClock {
    fn offsets(&self) -> (Option<i64>, Vec<i64>) {
        (Some(self.parent_ahead_ms), Vec::new())
    }
}

/// Issue 12 item 6: a node whose clock is days off against its parent says so in its health and
/// refuses to stamp events (503, saying why in Chinese and English) until told to proceed.
#[test]
fn a_node_three_days_slow_against_its_parent_stamps_nothing_until_told_to_proceed() {
    let (_temp, node) = open_village();
    assert_eq!(node.info().clock, None, "nobody has judged the clock yet");
    node.set_peer_clocks(Arc::new(ParentClock {
        parent_ahead_ms: TimeDelta::days(3).num_milliseconds(),
    }));
    let health = node.info().clock.expect("judged against the parent");
    assert!(health.skewed && !health.allowed, "{health:?}");
    assert_eq!(health.offset_ms, -TimeDelta::days(3).num_milliseconds());

    let refused = node
        .register(&tester(), now(), registration(Category::WageArrears))
        .expect_err("a skewed node stamps nothing");
    assert_eq!(refused.http_status(), 503);
    let message = refused.to_string();
    assert!(message.contains("时钟偏差"), "{message}");
    assert!(message.contains("3 d 0 h slow"), "{message}");
    assert!(message.contains("--allow-clock-skew"), "{message}");
    assert_eq!(node.store().case_count(), 0, "nothing was written");

    node.allow_clock_skew();
    assert!(node.info().clock.is_some_and(|health| health.allowed));
    node.register(&tester(), now(), registration(Category::WageArrears))
        .expect("told to proceed");

    // Within 5 minutes is no skew at all.
    let (_temp, agreeing) = open_village();
    agreeing.set_peer_clocks(Arc::new(ParentClock {
        parent_ahead_ms: TimeDelta::minutes(4).num_milliseconds(),
    }));
    agreeing
        .register(&tester(), now(), registration(Category::WageArrears))
        .expect("a clock within 5 minutes stamps");
}

#[test]
fn permitted_events_answer_as_append_would_and_write_nothing() {
    let (_temp, node, number) = village_with_a_case();
    let person = |role| fengqiao_accounts::Actor {
        operator: "李调解 (lizt)".to_owned(),
        roles: fengqiao_accounts::RoleSet::of(&[role]),
    };
    let operator = person(fengqiao_accounts::Role::Operator);
    let supervisor = person(fengqiao_accounts::Role::Supervisor);
    let candidates = [
        EventKind::Accept {},
        EventKind::Reply {
            outcome: ReplyOutcome::Support,
            text: "依法支持".into(),
        },
        EventKind::TakeOver {
            reason: "提级办理".into(),
        },
        EventKind::Note {
            text: "已电话联系".into(),
        },
    ];
    let permitted = |actor: &fengqiao_accounts::Actor| -> Vec<bool> {
        node.permitted_events(actor, now(), &number, &candidates)
            .unwrap()
            .iter()
            .map(Result::is_ok)
            .collect()
    };
    // The operator: 受理 and 备注; no 答复 before acceptance (the lifecycle), no 提级办理 (the
    // role table).
    assert_eq!(permitted(&operator), [true, false, false, true]);
    // The supervisor: only 备注; 受理 and 答复 are operators' (the role table), and a standalone
    // node has no tier above to take the case over (the authority table).
    assert_eq!(permitted(&supervisor), [false, false, false, true]);
    let refusals = node
        .permitted_events(&supervisor, now(), &number, &candidates)
        .unwrap();
    let accept_refused = refusals[0].as_ref().unwrap_err().to_string();
    assert!(
        accept_refused.contains("may not accept"),
        "{accept_refused}"
    );
    // Asking wrote nothing.
    assert_eq!(node.get(None, now(), &number).unwrap().events.len(), 1);

    node.append(&operator, now(), &number, event(EventKind::Accept {}))
        .unwrap();
    assert_eq!(permitted(&operator), [false, true, false, true]);
    assert!(matches!(
        node.permitted_events(&operator, now(), "430702001002-2026-999999", &candidates),
        Err(ServiceError::NotFound(_))
    ));
}

/// The whole ledger as CSV with full identifiers, as the API's export writes it.
fn export_csv(node: &Node) -> String {
    let mut file = std::io::Cursor::new(Vec::new());
    let written = crate::api::ledger_export::export_ledger(
        node,
        crate::api::ledger_export::Exporter {
            operator: OPERATOR,
            action: "export_ledger",
        },
        &fengqiao_console::CaseQuery::default(),
        crate::import::export::Identifiers::Full,
        crate::import::export::LedgerFileFormat::Csv,
        now(),
        &mut file,
    )
    .unwrap();
    assert_eq!(written, 3);
    String::from_utf8(file.into_inner()).unwrap()
}

#[test]
fn the_ledger_export_is_the_same_from_kept_rows_as_from_the_documents_and_never_stale() {
    let (_temp, node) = open_village();
    let numbers: Vec<CaseId> = [
        Category::WageArrears,
        Category::LandRequisition,
        Category::WageArrears,
    ]
    .into_iter()
    .map(|category| {
        node.register(&tester(), now(), registration(category))
            .unwrap()
            .header
            .number
    })
    .collect();
    let reply = |text: &str| {
        event(EventKind::Reply {
            outcome: fengqiao_case::ReplyOutcome::Support,
            text: text.to_owned(),
        })
    };
    node.append(&tester(), now(), &numbers[1], event(EventKind::Accept {}))
        .unwrap();
    node.append(&tester(), now(), &numbers[1], reply("已协调补发工资"))
        .unwrap();

    // No row kept yet: every row is read from its document.
    let from_documents = export_csv(&node);
    assert!(from_documents.contains("已协调补发工资"));
    let step = node.store().keep_ledger_rows(100).unwrap();
    assert_eq!((step.written, step.caught_up), (3, true));
    for number in &numbers {
        assert!(node.store().current_ledger_facts(number).unwrap().is_some());
    }
    assert_eq!(export_csv(&node), from_documents);

    // A case written after its row was kept: the export shows the write at once, before the
    // keeper has been there again.
    assert!(!from_documents.contains("工资已全部到账"));
    node.append(
        &tester(),
        now(),
        &numbers[1],
        event(EventKind::Close {
            resolved: true,
            note: "工资已全部到账".to_owned(),
        }),
    )
    .unwrap();
    assert!(
        node.store()
            .current_ledger_facts(&numbers[1])
            .unwrap()
            .is_none()
    );
    let after_write = export_csv(&node);
    assert!(after_write.contains("工资已全部到账"));
    assert!(after_write.contains("已协调补发工资"));
    // And once the keeper has been there again, the kept row says the same.
    let step = node.store().keep_ledger_rows(100).unwrap();
    assert_eq!((step.written, step.caught_up), (1, true));
    assert!(
        node.store()
            .current_ledger_facts(&numbers[1])
            .unwrap()
            .is_some()
    );
    assert_eq!(export_csv(&node), after_write);
}
