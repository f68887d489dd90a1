//! ID numbers, other documents, phones and Excel's scientific notation, value by value.

use chrono::NaiveDate;

use super::*;

fn on() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 10).unwrap_or_default()
}

fn resident(value: &str) -> Result<(), String> {
    check_id_number(IdType::ResidentId, value, on())
}

#[test]
fn resident_id_numbers_with_their_check_character_pass() {
    // The worked example of GB 11643-1999, with its X in either case.
    for valid in [
        "11010519491231002X",
        "11010519491231002x",
        "210202196605120030",
        "430702198503120029",
        // A newborn registered the day it was born, and the oldest birth year.
        "430702202603100016",
        "430702190001010018",
        "",
    ] {
        assert_eq!(resident(valid), Ok(()), "{valid}");
    }
}

#[test]
fn wrong_check_character_length_letters_and_dates_are_refused() {
    for (value, expected) in [
        ("110105194912310021", "wrong check character"),
        ("210202196605120000", "wrong check character"),
        ("21020219660512003", "has 17 characters"),
        ("2102021966051200305", "has 19 characters"),
        ("21020A196605120035", "17 digits followed by a digit or X"),
        ("21020219660512003Y", "17 digits followed by a digit or X"),
        ("210202196602300035", "19660230, which does not exist"),
        ("210202196613010035", "which does not exist"),
        ("210202189912310035", "outside 1900 to 20260310"),
        ("210202202603110035", "outside 1900 to 20260310"),
        ("not-a-number", "has 12 characters"),
    ] {
        let why = resident(value).expect_err(value);
        assert!(why.contains(expected), "{value}: {why}");
    }
}

#[test]
fn fifteen_digit_numbers_are_checked_through_their_eighteen_digit_form() {
    // 1949-12-31: 110105491231002 becomes 11010519491231002X.
    assert_eq!(
        resident_id_18("110105491231002").as_deref(),
        Some("11010519491231002X")
    );
    assert_eq!(resident("110105491231002"), Ok(()));
    assert_eq!(
        resident_id_18("11010519491231002x").as_deref(),
        Some("11010519491231002X")
    );
    let why = resident("110105491331002").expect_err("month 13");
    assert!(why.contains("19491331"), "{why}");
    let why = resident("11010549123100A").expect_err("a letter");
    assert!(why.contains("all digits"), "{why}");
    assert_eq!(resident_id_18("1101054912310"), None);
}

#[test]
fn other_documents_are_letters_digits_and_dashes() {
    for id_type in [
        IdType::Passport,
        IdType::HkMacaoPermit,
        IdType::TaiwanPermit,
        IdType::Other,
    ] {
        for valid in ["E12345678", "H1234567801", "12345", "AB-1234-CD", ""] {
            assert_eq!(check_id_number(id_type, valid, on()), Ok(()), "{valid}");
        }
        for invalid in ["E123", "E 12345678", "护照12345678", &"A".repeat(33)] {
            let why = check_id_number(id_type, invalid, on()).expect_err(invalid);
            assert!(why.contains("5 to 32"), "{invalid}: {why}");
        }
    }
    // A passport number is not held to the resident ID's checksum, but a resident ID is.
    assert!(check_id_number(IdType::Passport, "210202196605120000", on()).is_ok());
    assert!(resident("E12345678").is_err());
}

#[test]
fn mobiles_and_landlines_pass_and_the_rest_is_refused() {
    for valid in [
        "13807361234",
        "19907361234",
        "138 0736 1234",
        "138-0736-1234",
        "+8613807361234",
        "+86 138 0736 1234",
        "0736-7221234",
        "07367221234",
        "010-12345678",
        "0736 722 1234",
        "0736-7221234-123",
        "+86 10 12345678",
        "",
    ] {
        assert_eq!(check_phone(valid), Ok(()), "{valid}");
    }
    for invalid in [
        "not-a-phone",
        "12807361234",
        "1380736123",
        "138073612345",
        "7221234",
        "0736-72212",
        "13807361234-12",
        "电话13807361234",
        "+1 415 555 0100",
    ] {
        let why = check_phone(invalid).expect_err(invalid);
        assert!(why.contains("is not a phone number"), "{invalid}: {why}");
    }
}

#[test]
fn excel_scientific_notation_is_named_with_the_way_to_keep_text() {
    for mangled in [
        "2.10202E+17",
        "1.39E+10",
        "2.10202e17",
        "4.30702E+17",
        "1E+10",
    ] {
        assert!(is_scientific_notation(mangled), "{mangled}");
        for why in [
            resident(mangled).expect_err(mangled),
            check_phone(mangled).expect_err(mangled),
            check_id_number(IdType::Passport, mangled, on()).expect_err(mangled),
        ] {
            assert!(
                why.contains("Excel turned the column into a number"),
                "{why}"
            );
            assert!(why.contains("文本") && why.contains('\''), "{why}");
        }
    }
    for plain in [
        "210202196605120030",
        "E12345678",
        "1.5",
        "E+17",
        "2.1E",
        "e5",
    ] {
        assert!(!is_scientific_notation(plain), "{plain}");
    }
}
