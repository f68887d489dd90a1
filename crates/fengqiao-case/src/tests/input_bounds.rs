//! The bounds table and the text rule, field by field, and through the lifecycle's validation.

use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 2, 0, 0)
        .single()
        .unwrap_or_default()
}

fn petitioner(name: &str) -> Petitioner {
    Petitioner {
        name: name.to_owned(),
        id_number: "430702198001011236".to_owned(),
        id_type: Default::default(),
        phone: "13800000000".to_owned(),
        address: "芦荻山村三组".to_owned(),
        representative: false,
    }
}

fn header() -> CaseHeader {
    crate::test_support::sample_header("430702001001-2026-000123", "430702001001", "某建筑公司")
}

/// The field and reason of an `InvalidInput` refusal; panics on anything else.
fn refusal(result: Result<(), CaseError>) -> (&'static str, String) {
    match result {
        Err(CaseError::InvalidInput { field, why }) => (field, why),
        other => panic!("expected an invalid-input refusal, got {other:?}"),
    }
}

/// Characters that reach a terminal as commands or reorder what it shows.
const HOSTILE: [char; 12] = [
    '\u{1b}', '\u{07}', '\r', '\0', '\t', '\u{7f}', '\u{85}', '\u{9b}', '\u{202e}', '\u{2066}',
    '\u{200f}', '\u{061c}',
];

#[test]
fn every_kind_takes_its_length_and_refuses_one_more() {
    for kind in TextKind::ALL {
        let longest = "字".repeat(kind.max_chars());
        assert!(check_text("field", &longest, kind).is_ok(), "{kind:?}");
        let (field, why) = refusal(check_text("field", &format!("{longest}字"), kind));
        assert_eq!(field, "field");
        assert!(
            why.contains(&format!("at most {}", kind.max_chars())),
            "{kind:?}: {why}"
        );
    }
    assert!(TextKind::Name.max_chars() < TextKind::Line.max_chars());
    assert!(TextKind::Summary.max_chars() < TextKind::Text.max_chars());
}

#[test]
fn control_and_reordering_characters_are_refused_in_every_kind_by_code_point() {
    for kind in TextKind::ALL {
        for hostile in HOSTILE {
            let value = format!("正常文字{hostile}]0;owned");
            let (_, why) = refusal(check_text("summary", &value, kind));
            assert!(
                why.contains(&format!("character 5 is U+{:04X}", u32::from(hostile))),
                "{kind:?} {hostile:?}: {why}"
            );
            assert!(
                !why.contains(hostile),
                "the message does not carry it: {why:?}"
            );
        }
    }
}

#[test]
fn line_breaks_only_in_long_text_and_ordinary_text_everywhere() {
    for kind in [TextKind::Summary, TextKind::Text] {
        assert!(check_text("text", "第一行\n第二行", kind).is_ok());
    }
    for kind in [TextKind::Name, TextKind::Identifier, TextKind::Line] {
        let (_, why) = refusal(check_text("name", "张\n三", kind));
        assert!(why.contains("U+000A"), "{why}");
    }
    for ordinary in ["张三", "Zhang San", "👨‍👩‍👧 家庭", "（全角）：，。", "Ñandú"]
    {
        for kind in TextKind::ALL {
            assert!(check_text("field", ordinary, kind).is_ok(), "{ordinary}");
        }
    }
}

#[test]
fn implausible_headers_are_refused_naming_the_field() {
    assert!(check_header(&header(), now()).is_ok());
    let refused = |change: &dyn Fn(&mut CaseHeader)| {
        let mut header = header();
        change(&mut header);
        refusal(check_header(&header, now()))
    };
    let (field, why) = refused(&|header| header.headcount = u32::MAX);
    assert_eq!(field, "headcount");
    assert!(why.contains("at most 10000"), "{why}");
    let (field, _) = refused(&|header| header.headcount = 0);
    assert_eq!(field, "headcount");
    let (field, why) = refused(&|header| {
        header.petitioners = vec![petitioner("张三"), petitioner("李四"), petitioner("王五")];
        header.headcount = 2;
    });
    assert_eq!(field, "headcount");
    assert!(why.contains("fewer than the 3 petitioners"), "{why}");
    let (field, why) = refused(&|header| header.summary = "长".repeat(1 << 20));
    assert_eq!(field, "summary");
    assert!(why.contains("1048576 characters"), "{why}");
    let (field, why) = refused(&|header| {
        header.petitioners.push(petitioner(&"名".repeat(10_000)));
        header.headcount = 2;
    });
    assert_eq!(field, "petitioners.name");
    assert!(why.starts_with("petitioner 2: "), "{why}");
    let (field, _) = refused(&|header| header.location.village = "芦荻山村\u{1b}[2J".to_owned());
    assert_eq!(field, "location.village");
    let (field, _) = refused(&|header| header.ownership.plan = "\u{202e}划计".to_owned());
    assert_eq!(field, "ownership.plan");
    let (field, _) = refused(&|header| {
        header.petitioners = vec![petitioner("甲"); MAX_PETITIONERS + 1];
        header.headcount = MAX_HEADCOUNT;
    });
    assert_eq!(field, "petitioners");

    // The lifecycle's registration check is this one.
    let mut bad = header();
    bad.respondent = "某公司\u{7}".to_owned();
    let error = crate::lifecycle::validate_header(&bad, now()).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "invalid respondent: character 4 is U+0007: control characters, line breaks and text-direction characters are refused"
    );
}

#[test]
fn case_numbers_have_a_plausible_year_and_six_digit_sequence() {
    let parts = parse_case_number("430702-2026-000123", now()).expect("well formed");
    assert_eq!(
        parts,
        CaseNumberParts {
            region_code: "430702",
            year: 2026,
            sequence: 123
        }
    );
    assert!(parse_case_number("430702001001-2027-000001", now()).is_ok());
    for (number, expected) in [
        ("430702-9999-000001", "year 9999, outside 2000 to 2027"),
        ("430702-2028-000001", "year 2028"),
        ("430702-1999-000001", "year 1999"),
        ("430702-2026-1234567", "sequence of 6 digits"),
        ("430702-2026-12345", "sequence of 6 digits"),
        ("430702-2026-000000", "sequence 0"),
        ("430702-26-000001", "4-digit year"),
        ("43070-2026-000001", "region code"),
        ("430702-2026", "three parts"),
    ] {
        let why = parse_case_number(number, now()).expect_err(number);
        assert!(why.contains(expected), "{number}: {why}");
    }
}

#[test]
fn operators_are_one_plain_line_and_not_a_rule() {
    for name in [
        "李调解",
        "区信访局 督查科",
        "rule",
        "rules: none",
        "ruler:x",
        "rule x",
    ] {
        assert!(check_operator("operator", name).is_ok(), "{name}");
    }
    for name in [
        "rule:x",
        "RULE:x",
        "Rule:overdue",
        "rule：x",
        "RULE：x",
        " rule:x",
    ] {
        let (field, why) = refusal(check_operator("operator", name));
        assert_eq!(field, "operator");
        assert!(why.contains("reserved"), "{name}: {why}");
    }
    let (_, why) = refusal(check_operator("operator", "李\u{1b}]0;x\u{7}"));
    assert!(why.contains("U+001B"), "{why}");
    let (_, why) = refusal(check_operator("operator", "李\n王"));
    assert!(why.contains("U+000A"), "{why}");
    assert!(check_operator("operator", &"名".repeat(MAX_OPERATOR_CHARS)).is_ok());
    let (_, why) = refusal(check_operator(
        "operator",
        &"名".repeat(MAX_OPERATOR_CHARS + 1),
    ));
    assert!(why.contains("at most 100"), "{why}");
}

#[test]
fn event_payloads_are_checked_field_by_field() {
    let header = header();
    let note = EventKind::Note {
        text: "电话回访\n情绪稳定".to_owned(),
    };
    assert!(check_event(&header, &note, now()).is_ok());
    let (field, _) = refusal(check_event(
        &header,
        &EventKind::Note {
            text: "\u{1b}]52;c;ZWNobw==\u{7}".to_owned(),
        },
        now(),
    ));
    assert_eq!(field, "text");
    let (field, _) = refusal(check_event(
        &header,
        &EventKind::Extend {
            days: 30,
            approver: "王\r局长".to_owned(),
            reason: "需要调查".to_owned(),
        },
        now(),
    ));
    assert_eq!(field, "approver");
    let (field, _) = refusal(check_event(
        &header,
        &EventKind::Close {
            resolved: true,
            note: "字".repeat(TextKind::Text.max_chars() + 1),
        },
        now(),
    ));
    assert_eq!(field, "note");

    // Amendments are judged against the header they amend.
    let (field, why) = refusal(check_event(
        &header,
        &EventKind::AmendHeader {
            amendment: HeaderAmendment::Petitioners(vec![petitioner("甲"), petitioner("乙")]),
        },
        now(),
    ));
    assert_eq!(field, "headcount");
    assert!(why.contains("fewer than the 2 petitioners"), "{why}");
    let mut group = header.clone();
    group.petitioners = vec![petitioner("甲"), petitioner("乙")];
    group.headcount = 2;
    let (field, _) = refusal(check_event(
        &group,
        &EventKind::AmendHeader {
            amendment: HeaderAmendment::Headcount(1),
        },
        now(),
    ));
    assert_eq!(field, "headcount");
    assert!(
        check_event(
            &group,
            &EventKind::AmendHeader {
                amendment: HeaderAmendment::Headcount(30),
            },
            now(),
        )
        .is_ok()
    );
}

#[test]
fn petitioners_id_numbers_and_phones_are_checked_where_they_are_registered_and_amended() {
    let refused = |change: &dyn Fn(&mut Petitioner)| {
        let mut header = header();
        change(&mut header.petitioners[0]);
        refusal(crate::lifecycle::validate_header(&header, now()))
    };
    let (field, why) = refused(&|petitioner| petitioner.id_number = "430702198001011234".into());
    assert_eq!(field, "petitioners.id_number");
    assert!(
        why.starts_with("petitioner 1: has a wrong check character"),
        "{why}"
    );
    let (field, why) = refused(&|petitioner| petitioner.id_number = "2.10202E+17".into());
    assert_eq!(field, "petitioners.id_number");
    assert!(
        why.contains("Excel turned the column into a number"),
        "{why}"
    );
    let (field, why) = refused(&|petitioner| petitioner.phone = "not-a-phone".into());
    assert_eq!(field, "petitioners.phone");
    assert!(why.contains("is not a phone number"), "{why}");
    // Born after the registration it is listed in.
    let (field, why) = refused(&|petitioner| petitioner.id_number = "430702202603110011".into());
    assert_eq!(field, "petitioners.id_number");
    assert!(why.contains("outside 1900 to 20260310"), "{why}");
    // A passport is not held to the resident ID's checksum; nothing given is allowed.
    let mut passport = header();
    passport.petitioners[0].id_type = crate::model::IdType::Passport;
    passport.petitioners[0].id_number = "E12345678".into();
    assert!(crate::lifecycle::validate_header(&passport, now()).is_ok());
    let mut declined = header();
    declined.petitioners[0].id_number.clear();
    declined.petitioners[0].phone.clear();
    assert!(crate::lifecycle::validate_header(&declined, now()).is_ok());

    let mut bad = petitioner("甲");
    bad.phone = "1.39E+10".into();
    let (field, why) = refusal(check_event(
        &header(),
        &EventKind::AmendHeader {
            amendment: HeaderAmendment::Petitioners(vec![bad]),
        },
        now(),
    ));
    assert_eq!(field, "petitioners.phone");
    assert!(why.contains("文本"), "{why}");
}

#[test]
fn a_resident_id_type_is_left_out_of_the_json_so_old_petitioners_encode_as_they_did() {
    let old = r#"{"name":"张三","id_number":"430702198001011236","phone":"","address":"","representative":false}"#;
    let read: Petitioner = serde_json::from_str(old).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(read.id_type, crate::model::IdType::ResidentId);
    assert_eq!(serde_json::to_string(&read).ok().as_deref(), Some(old));
    let mut passport = read;
    passport.id_type = crate::model::IdType::Passport;
    let written = serde_json::to_string(&passport).unwrap_or_default();
    assert!(written.contains(r#""id_type":"passport""#), "{written}");
    let back: Petitioner = serde_json::from_str(&written).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(back, passport);
}

#[test]
fn refused_character_table_is_the_control_characters_and_the_reordering_ones() {
    let reordering = [
        '\u{061C}', '\u{200E}', '\u{200F}', '\u{2028}', '\u{2029}', '\u{202A}', '\u{202B}',
        '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ];
    for character in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
        assert_eq!(
            is_control_or_reordering(character),
            character.is_control() || reordering.contains(&character),
            "U+{:04X}",
            u32::from(character)
        );
    }
}

#[test]
fn text_pattern_lets_line_breaks_through_only_in_long_text() {
    assert!(text_pattern(TextKind::Text).contains("\u{0000}-\u{0009}\u{000B}-\u{001F}"));
    assert!(text_pattern(TextKind::Line).contains("\u{0000}-\u{001F}"));
    assert!(text_pattern(TextKind::Name).contains('\u{202E}'));
}
