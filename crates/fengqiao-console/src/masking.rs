//! 个人信息脱敏: how lists show identifiers (CONSOLE-NOTES): an ID number keeps its first 6 and
//! last 4 characters (430702********0027), a phone its first 3 and last 4 digits (138****1234).
//! The one masking rule of the console: every page that shows an identifier without the
//! deliberate "查看完整信息" calls these.

/// An ID number with all but its first 6 and last 4 characters hidden. A value too short to
/// keep 10 characters (another document's number) keeps only its last 2 at most, so a short
/// number is never shown whole.
pub fn mask_id_number(id_number: &str) -> String {
    mask_keeping(id_number, 6, 4)
}

/// A phone number with all but its first 3 and last 4 digits hidden; spaces, dashes and a
/// `+86` prefix are dropped first, so `+86 138-0013-1234` shows as `138****1234`.
pub fn mask_phone(phone: &str) -> String {
    let digits: String = phone
        .trim()
        .trim_start_matches("+86")
        .chars()
        .filter(|character| !matches!(character, ' ' | '-'))
        .collect();
    mask_keeping(&digits, 3, 4)
}

fn mask_keeping(value: &str, head: usize, tail: usize) -> String {
    let characters: Vec<char> = value.trim().chars().collect();
    let count = characters.len();
    if count == 0 {
        return String::new();
    }
    let (head, tail) = if count > head + tail {
        (head, tail)
    } else {
        // Too short to keep both ends and still hide something: keep at most a quarter.
        (0, (count / 4).min(2))
    };
    let hidden = count - head - tail;
    let mut masked: String = characters[..head].iter().collect();
    masked.extend(std::iter::repeat_n('*', hidden));
    masked.extend(&characters[count - tail..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_number_keeps_its_first_six_and_last_four() {
        assert_eq!(mask_id_number("430702198001010027"), "430702********0027");
        assert_eq!(mask_id_number("43070219800101002X"), "430702********002X");
        // A 15-digit first-generation number keeps the same ends.
        assert_eq!(mask_id_number("430702800101002"), "430702*****1002");
    }

    #[test]
    fn a_mobile_keeps_its_first_three_and_last_four() {
        assert_eq!(mask_phone("13800131234"), "138****1234");
        assert_eq!(mask_phone("+86 138-0013-1234"), "138****1234");
        assert_eq!(mask_phone("0736-7771234"), "073****1234");
    }

    #[test]
    fn short_or_empty_values_are_never_shown_whole() {
        assert_eq!(mask_id_number(""), "");
        assert_eq!(mask_phone(""), "");
        assert_eq!(mask_id_number("E1234567"), "******67");
        assert_eq!(mask_id_number("123"), "***");
        for value in ["E1234567", "123", "1234567890"] {
            assert_ne!(mask_id_number(value), value);
        }
    }

    #[test]
    fn masking_counts_characters_not_bytes() {
        // A value someone typed with CJK characters must not split a character.
        assert_eq!(
            mask_id_number("护照号码一二三四五六七八"),
            "护照号码一二**五六七八"
        );
    }
}
