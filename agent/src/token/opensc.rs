//! What OpenSC's configuration allows, where Segel must know before calling it.
//!
//! OpenSC unblocks a PIV PIN with the PUK through C_SetPIN in a session that is not logged in
//! only when its `pkcs11` block says `user_pin_unblock_style = set_pin_in_unlogged_session`.
//! Without that, OpenSC 0.23 (Debian 12) treats the same call as a PIN *change* with the PUK
//! as the old PIN (framework-pkcs15.c `pkcs15_change_pin`: CHANGE REFERENCE DATA with P2 = 80),
//! which spends a PIN try — so Segel reads the configuration OpenSC reads and calls C_SetPIN
//! for an unblock only when it is set.

use std::path::PathBuf;

/// The file OpenSC reads: `$OPENSC_CONF`, else the platform's default.
pub fn config_path() -> PathBuf {
    std::env::var_os("OPENSC_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/opensc/opensc.conf"))
}

/// Whether OpenSC's PKCS#11 module unblocks with C_SetPIN(PUK, new PIN) in a session that is
/// not logged in, per the configuration at `config_path()`.
pub fn unblocks_with_set_pin() -> bool {
    std::fs::read_to_string(config_path()).is_ok_and(|text| unblock_style_set(&text))
}

/// Scans an scconf text (OpenSC's format: `name value { … }` blocks, `key = value;` items,
/// `#` comments) for `user_pin_unblock_style = set_pin_in_unlogged_session;` inside a `pkcs11`
/// block of `app default` or `app opensc-pkcs11` (the blocks OpenSC's module consults).
pub fn unblock_style_set(text: &str) -> bool {
    let mut code = String::new();
    for line in text.lines() {
        code.push_str(line.split('#').next().unwrap_or_default());
        code.push('\n');
    }
    // Tokens: words, `{`, `}`, `=`, `;` (quotes are not used for these names).
    let mut tokens: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in code.chars() {
        if c.is_whitespace() || "{}=;,".contains(c) {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if "{}=;".contains(c) {
                tokens.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    // The names of the open blocks: the words before each `{` since the last `;`, `{` or `}`.
    let mut stack: Vec<Vec<String>> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "{" => stack.push(std::mem::take(&mut pending)),
            "}" => {
                stack.pop();
                pending.clear();
            }
            ";" => pending.clear(),
            "=" => {
                let key = pending.last().cloned().unwrap_or_default();
                let value = tokens.get(i + 1).cloned().unwrap_or_default();
                let in_app = stack.first().is_some_and(|b| {
                    b.first().is_some_and(|w| w == "app")
                        && b.get(1)
                            .is_some_and(|n| n == "default" || n == "opensc-pkcs11")
                });
                let in_pkcs11 = stack.len() == 2 && stack[1].first().is_some_and(|w| w == "pkcs11");
                if in_app
                    && in_pkcs11
                    && key == "user_pin_unblock_style"
                    && value == "set_pin_in_unlogged_session"
                {
                    return true;
                }
                pending.clear();
                i += 1;
            }
            w => pending.push(w.to_owned()),
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unblock_style_is_found_only_in_the_pkcs11_block_of_the_modules_app() {
        let on = "app default {\n  # debug = 3;\n  pkcs11 {\n    user_pin_unblock_style = set_pin_in_unlogged_session;\n  }\n}\n";
        assert!(unblock_style_set(on));
        assert!(unblock_style_set(
            "app opensc-pkcs11 { pkcs11 { user_pin_unblock_style = set_pin_in_unlogged_session; } }"
        ));
        // Debian's shipped file: only comments.
        assert!(!unblock_style_set(
            "app default {\n\t# user_pin_unblock_style = set_pin_in_unlogged_session;\n}\n"
        ));
        assert!(!unblock_style_set(
            "app default { pkcs11 { user_pin_unblock_style = set_pin_in_specific_context; } }"
        ));
        assert!(!unblock_style_set(
            "app pkcs15-init { pkcs11 { user_pin_unblock_style = set_pin_in_unlogged_session; } }"
        ));
        assert!(!unblock_style_set(
            "app default { framework pkcs15 { user_pin_unblock_style = set_pin_in_unlogged_session; } }"
        ));
        assert!(!unblock_style_set(""));
    }
}
