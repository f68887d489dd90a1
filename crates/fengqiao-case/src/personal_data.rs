//! Personal data as people type it: resident ID numbers (GB 11643-1999), other identity
//! documents, and mobile and landline phone numbers.
//!
//! Called by [`crate::input_bounds`] for every petitioner a registration or an amendment lists
//! (so the API and the ledger import both pass through here), and by the import's CSV reader to
//! name the column a bad value sits in. Each check returns why a value is refused, in words for
//! a person; the caller names the field.
//!
//! An empty ID number or phone is allowed: a petitioner may decline to give one. Values are
//! stored as typed (a 15-digit first-generation ID number stays 15 digits, a phone keeps its
//! spaces); [`resident_id_18`] gives the 18-digit form where two numbers must be compared.
//!
//! Ledgers kept in Excel lose long digit strings: Excel reads `210202196605120035` as a number
//! and shows `2.10202E+17`, keeping 15 significant digits. Such a value is refused with a hint
//! that says what happened and how to keep the column as text.

use chrono::{Datelike, NaiveDate};

use crate::model::IdType;

/// The earliest birth year a resident ID number may carry.
pub const FIRST_BIRTH_YEAR: i32 = 1900;

/// Length bounds of a document number other than a resident ID (passports, permits).
pub const OTHER_DOCUMENT_CHARS: std::ops::RangeInclusive<usize> = 5..=32;

/// What Excel did to a column holding long numbers, and how to keep it as text.
pub const EXCEL_NUMBER_HINT: &str = "Excel turned the column into a number (scientific \
     notation) and lost digits: set the column's format to 文本 (Text) before pasting, or type an \
     apostrophe ' before the value. Excel 把该列当成了数字（科学计数法），数字已丢失：请先把该列\
     格式设为“文本”再粘贴，或在数值前加英文单引号 '";

/// The ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID number.
pub fn id_number_check_character(first_seventeen_digits: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK_CHARACTERS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    if first_seventeen_digits.chars().count() != 17 {
        return None;
    }
    let mut sum = 0;
    for (character, weight) in first_seventeen_digits.chars().zip(WEIGHTS) {
        sum += character.to_digit(10)? * weight;
    }
    CHECK_CHARACTERS.get((sum % 11) as usize).copied()
}

/// Whether `value` is a number in scientific notation (`2.10202E+17`, `1.39e10`): what a
/// spreadsheet makes of a long digit string it took for a number.
pub fn is_scientific_notation(value: &str) -> bool {
    let Some((mantissa, exponent)) = value.trim().split_once(['e', 'E']) else {
        return false;
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    let exponent = exponent
        .strip_prefix('+')
        .or_else(|| exponent.strip_prefix('-'))
        .unwrap_or(exponent);
    mantissa_ok && digits(exponent)
}

fn excel_mangled(value: &str) -> Result<(), String> {
    if is_scientific_notation(value) {
        return Err(format!("`{}`: {EXCEL_NUMBER_HINT}", value.trim()));
    }
    Ok(())
}

/// The 18-digit form of a valid resident ID number: itself (check character upper-cased), or a
/// 15-digit first-generation number with `19` put before its 2-digit birth year and the check
/// character computed. `None` when `value` is not a well-formed number of either length.
pub fn resident_id_18(value: &str) -> Option<String> {
    let all_digits = |text: &str| text.bytes().all(|byte| byte.is_ascii_digit());
    match value.len() {
        18 if value.is_ascii() => {
            let (body, check) = value.split_at(17);
            let check_ok = all_digits(check) || check.eq_ignore_ascii_case("x");
            (all_digits(body) && check_ok).then(|| value.to_ascii_uppercase())
        }
        15 if all_digits(value) => {
            let body = format!("{}19{}", &value[..6], &value[6..]);
            let check = id_number_check_character(&body)?;
            Some(format!("{body}{check}"))
        }
        _ => None,
    }
}

/// A resident ID number: 18 characters (17 digits and a check digit or `X`) with a valid check
/// character, or a 15-digit first-generation number; a region code of 6 digits (any), and a
/// birth date that exists, from [`FIRST_BIRTH_YEAR`] and not after `on` (China date).
pub fn check_resident_id(value: &str, on: NaiveDate) -> Result<(), String> {
    excel_mangled(value)?;
    let length = value.chars().count();
    if length != 18 && length != 15 {
        return Err(format!(
            "has {length} characters; a resident ID number (居民身份证号) has 18 (or 15 on a \
             first-generation card)"
        ));
    }
    let Some(eighteen) = resident_id_18(value) else {
        return Err(if length == 18 {
            "must be 17 digits followed by a digit or X (身份证号由17位数字和1位数字或X组成)"
                .to_owned()
        } else {
            "a 15-character ID number must be all digits".to_owned()
        });
    };
    let (body, check) = eighteen.split_at(17);
    let birth = &body[6..14];
    let Ok(birth_date) = NaiveDate::parse_from_str(birth, "%Y%m%d") else {
        return Err(format!(
            "holds the birth date {birth}, which does not exist (出生日期无效)"
        ));
    };
    if birth_date.year() < FIRST_BIRTH_YEAR || birth_date > on {
        return Err(format!(
            "holds the birth date {birth}, outside {FIRST_BIRTH_YEAR} to {} (出生日期无效)",
            on.format("%Y%m%d")
        ));
    }
    if length == 18
        && id_number_check_character(body).is_none_or(|expected| !check.starts_with(expected))
    {
        return Err(
            "has a wrong check character: a digit is mistyped (校验码不符，请核对号码)".to_owned(),
        );
    }
    Ok(())
}

/// The number of an identity document of `id_type`: a resident ID by
/// [`check_resident_id`]; any other document 5 to 32 letters, digits or `-`. Empty is allowed.
pub fn check_id_number(id_type: IdType, value: &str, on: NaiveDate) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if id_type == IdType::ResidentId {
        return check_resident_id(value, on);
    }
    excel_mangled(value)?;
    let length = value.chars().count();
    if !OTHER_DOCUMENT_CHARS.contains(&length)
        || !value
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '-')
    {
        return Err(format!(
            "a document number has {} to {} letters, digits or '-' (证件号码格式不符)",
            OTHER_DOCUMENT_CHARS.start(),
            OTHER_DOCUMENT_CHARS.end()
        ));
    }
    Ok(())
}

/// A phone number: a mobile (11 digits, `1[3-9]…`) or a landline with its area code (`0` and 2
/// or 3 digits, then 7 or 8 digits, then perhaps an extension `-123`), perhaps after `+86`.
/// Spaces and dashes between the parts are ignored. Empty is allowed.
pub fn check_phone(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    excel_mangled(value)?;
    let trimmed = value.trim();
    let international = trimmed
        .strip_prefix("+86")
        .or_else(|| trimmed.strip_prefix("0086"))
        .map(str::trim_start);
    // After +86 a landline drops its area code's trunk 0 (+86 10 12345678 is 010-12345678).
    let national = match international {
        Some(rest) if !rest.is_empty() && !rest.starts_with(['0', '1']) => format!("0{rest}"),
        Some(rest) if rest.starts_with("10") => format!("0{rest}"),
        Some(rest) => rest.to_owned(),
        None => trimmed.to_owned(),
    };
    let national = national.as_str();
    // The extension is what follows the subscriber number's last dash, so it is split off
    // before the other dashes are dropped.
    let digits_of = |text: &str| -> Option<String> {
        let kept: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        (!kept.is_empty() && kept.bytes().all(|byte| byte.is_ascii_digit())).then_some(kept)
    };
    let refused = || {
        format!(
            "`{trimmed}` is not a phone number: a mobile has 11 digits starting with 13 to 19, a \
             landline its area code, e.g. 0736-7221234 (电话号码格式不符)"
        )
    };
    let digits = digits_of(national).ok_or_else(refused)?;
    let is_mobile = |digits: &str| {
        digits.len() == 11 && digits.starts_with('1') && matches!(digits.as_bytes()[1], b'3'..=b'9')
    };
    let is_landline = |digits: &str| {
        // 0 + a 2- or 3-digit area code + a 7- or 8-digit number: 10 to 12 digits.
        digits.starts_with('0') && (10..=12).contains(&digits.len())
    };
    if is_mobile(&digits) || is_landline(&digits) {
        return Ok(());
    }
    // A landline with an extension: the part after the last dash is the extension.
    if let Some((number, extension)) = national.rsplit_once('-')
        && let (Some(number), Some(extension)) = (digits_of(number), digits_of(extension))
        && is_landline(&number)
        && (1..=6).contains(&extension.len())
    {
        return Ok(());
    }
    Err(refused())
}

#[cfg(test)]
#[path = "tests/personal_data.rs"]
mod tests;
