//! Which characters free text (names, references) may not hold.
//!
//! Such text travels on into member cards, statements, CSV exports and other systems' screens.
//! Control characters break lines and cells there. Invisible formatting characters do worse: a
//! right-to-left override shows `ABC` as `CBA`, a zero-width space makes two names that look
//! the same compare different, and a line separator is a line break to many readers.

use unicode_normalization::UnicodeNormalization;

/// Whether `c` may not appear in free text: a control character (a line break, a tab, a bell),
/// a direction mark or override, an invisible space or joiner other than the two that
/// Arabic-script and Indic names need (U+200C, U+200D), a byte order mark, a line or paragraph
/// separator, or a soft hyphen.
pub fn is_forbidden(c: char) -> bool {
    c.is_control()
        || is_invisible(c)
        || matches!(
            c,
            '\u{00AD}'              // soft hyphen: invisible, splits a name's search key
                | '\u{061C}'        // Arabic letter mark
                | '\u{180E}'        // Mongolian vowel separator (formerly a space)
                | '\u{200B}'        // zero-width space
                | '\u{200E}'..='\u{200F}' // left-to-right and right-to-left marks
                | '\u{2028}'..='\u{202E}' // line and paragraph separators, embeddings, overrides
                | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
                | '\u{2066}'..='\u{206F}' // isolates and deprecated format characters
                | '\u{FEFF}'        // byte order mark, zero-width no-break space
                | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
        )
}

/// Characters that show as nothing, or as a box, and that no name or reference needs: the
/// combining grapheme joiner, Hangul fillers, tag characters, the format
/// characters of other scripts (Arabic number signs, the Syriac abbreviation mark, musical and
/// shorthand format controls), private-use characters, which mean nothing outside the program that
/// wrote them, and noncharacters. Each made a name of nothing, or two names that look the same
/// compare different.
fn is_invisible(c: char) -> bool {
    let code = c as u32;
    matches!(
        c,
        '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{3164}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E000}'..='\u{F8FF}'
            | '\u{F0000}'..='\u{10FFFF}'
            | '\u{FDD0}'..='\u{FDEF}'
    ) || code & 0xFFFE == 0xFFFE
}

/// Whether `c` may not appear in a code or a reference a clerk types (an act's code, an
/// invoice's or a transfer's number): what free text refuses ([`is_forbidden`]), and also the
/// invisible characters names may need or that render as nothing: the zero-width joiners, the
/// combining grapheme joiner, variation selectors, tag characters and Hangul fillers. Such a
/// character makes two codes that look the same compare different.
pub fn is_forbidden_in_code(c: char) -> bool {
    is_forbidden(c) || matches!(c, '\u{200C}'..='\u{200D}') || is_variation_selector(c)
}

/// A variation selector: it picks a glyph's form (`❤️`, the emoji, is `❤` and U+FE0F, as phone
/// keyboards send it), so a product's or an organisation's name may hold one; a person's name
/// or a code shows nothing of it and compares different.
pub fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Whether a zero-width joiner or non-joiner in `text` stands anywhere but between two letters
/// of scripts whose letters join (Arabic, Syriac, N'Ko, Adlam, the Indic scripts, Mongolian),
/// where it shapes them. Elsewhere it shows as nothing: `Nd\u{200D}èye` looked like `Ndèye`,
/// and escaped the duplicate checks.
pub fn misplaced_joiner(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let joins = |c: Option<&char>| {
        c.is_some_and(|&c| {
            matches!(c,
                '\u{0600}'..='\u{08FF}'           // Arabic, Syriac, Thaana, N'Ko, Samaritan, Arabic Extended
                    | '\u{0900}'..='\u{0DFF}'     // the Indic scripts
                    | '\u{1800}'..='\u{18AF}'     // Mongolian
                    | '\u{FB50}'..='\u{FDFF}'     // Arabic presentation forms
                    | '\u{FE70}'..='\u{FEFF}'
                    | '\u{1E900}'..='\u{1E95F}'   // Adlam, written for Fula
            ) && !c.is_whitespace()
        })
    };
    chars.iter().enumerate().any(|(i, c)| {
        matches!(c, '\u{200C}' | '\u{200D}') && !(i > 0 && joins(chars.get(i - 1)) && joins(chars.get(i + 1)))
    })
}

/// A reference (a claim's `external_id`) as it is kept and compared: trimmed, in Unicode's
/// compatibility composition (NFKC). Software writes `É` as one character or as `E` and an
/// accent, a space as a plain or a no-break one, a letter plain or full-width; compared as sent,
/// one invoice written both ways was two references, and was paid twice.
pub fn reference_form(value: &str) -> String {
    let composed: String = value.trim().nfkc().collect();
    // NFKC turns some characters into white space (an ideographic space into a plain one).
    composed.trim().to_owned()
}

/// Whether two references (a receipt's, a transfer's) name the same one: clerks and banks write
/// them in either case, and `vir-4411` entered after `VIR-4411` is the same transfer; compared
/// in their [`reference_form`], so that one typed with `É` composed and one with it decomposed
/// are too.
pub fn same_reference(a: &str, b: &str) -> bool {
    let folded = |s: &str| -> String { reference_form(s).chars().flat_map(char::to_lowercase).nfkc().collect() };
    a == b || folded(a) == folded(b)
}

#[cfg(test)]
mod tests {
    use super::{is_forbidden, is_forbidden_in_code, misplaced_joiner, reference_form, same_reference};

    /// Codes refuse what names keep for their scripts, and keep what any text may hold.
    #[test]
    fn codes_refuse_every_invisible_character() {
        for c in [
            '\u{200C}',
            '\u{200D}',
            '\u{034F}',
            '\u{FE0F}',
            '\u{E0041}',
            '\u{3164}',
            '\u{200B}',
            '\u{1}',
        ] {
            assert!(is_forbidden_in_code(c), "{:04X}", c as u32);
        }
        assert!(!is_forbidden('\u{200D}'), "names keep the joiners");
        // A product's or an organisation's name may hold an emoji as phones send it.
        assert!(!is_forbidden('\u{FE0F}'));
        for c in ['É', 'ç', ' ', '-', '/', '٣', 'ب'] {
            assert!(!is_forbidden_in_code(c), "{c}");
        }
    }

    #[test]
    fn references_compare_ignoring_case_and_how_characters_are_written() {
        assert!(same_reference("VIR-4411", "vir-4411"));
        assert!(same_reference("REÇU-12", "reçu-12"));
        // Composed and decomposed accents, a no-break space, full-width letters.
        assert!(same_reference("VIR-ÉCOBANK-77", "VIR-E\u{301}COBANK-77"));
        assert!(same_reference("REÇU 12", "REC\u{327}U\u{A0}12"));
        assert!(same_reference("REÇU-12", "ＲＥÇＵ-１２"));
        assert!(!same_reference("VIR-ÉCOBANK-77", "VIR-ECOBANK-77"), "an accent counts");
        assert!(!same_reference("VIR-4411", "VIR-4412"));
        assert!(!same_reference("VIR 4411", "VIR-4411"));
        assert!(!same_reference("VIR-4411", "VIR-44110"));
    }

    /// A claim's reference is kept in one form, whatever form it was sent in; its case counts.
    #[test]
    fn a_reference_is_kept_composed_and_trimmed() {
        assert_eq!(reference_form("FACT-E\u{301}-1"), "FACT-É-1");
        assert_eq!(reference_form(" FACT\u{A0}É-1\u{3000}"), "FACT É-1");
        assert_eq!(reference_form("ＦＡＣＴ-１"), "FACT-1");
        assert_eq!(reference_form("fact-é-1"), "fact-é-1");
        assert_eq!(reference_form("INV-1"), "INV-1");
    }

    #[test]
    fn invisible_and_control_characters_are_forbidden_and_letters_are_not() {
        for c in [
            '\n', '\t', '\u{7}', '\u{85}', '\u{AD}', '\u{200B}', '\u{200E}', '\u{200F}', '\u{2028}', '\u{2029}',
            '\u{202A}', '\u{202E}', '\u{2060}', '\u{2066}', '\u{2069}', '\u{FEFF}',
        ] {
            assert!(is_forbidden(c), "U+{:04X}", c as u32);
        }
        // Letters of the region's names, in Latin and Arabic script, their joiners and the
        // spaces and punctuation names hold.
        for c in "Amégbé Kodjo-Sénamé N'Diaye Ñ ŋ Ɛ ɔ ƴ عبد الله ç ï œ ' ’ . \u{A0}\u{200C}\u{200D}".chars()
        {
            assert!(!is_forbidden(c), "U+{:04X}", c as u32);
        }
    }

    /// A zero-width joiner or non-joiner is in place only between two letters of joining
    /// scripts, where it shapes them (`عبد\u{200C}الله`); with a letter of such a script on one
    /// side only, whichever side, or at either end of the text, it shows as nothing.
    #[test]
    fn a_joiner_needs_a_joining_letter_on_both_sides() {
        for kept in ["عبد\u{200C}الله", "عبد\u{200D}الله", "ब\u{200D}ब"] {
            assert!(!misplaced_joiner(kept), "{kept:?}");
        }
        for misplaced in [
            "Nd\u{200D}èye",
            "a\u{200C}ب",
            "ب\u{200C}a",
            "a\u{200D}ब",
            "ब\u{200D}a",
            "\u{200D}ب",
            "ب\u{200D}",
            "ب \u{200C}ب",
        ] {
            assert!(misplaced_joiner(misplaced), "{misplaced:?}");
        }
    }
}
