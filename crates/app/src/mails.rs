//! The texts of the e-mails the Servicekonto sends, in German, English and Leichte Sprache.
//! Plain text on purpose: readable in every client, nothing to render, nothing to track.

/// The language of a mail: the account's language, German if unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailLang {
    De,
    En,
    Ls,
}

impl MailLang {
    pub fn parse(code: &str) -> MailLang {
        match code {
            "en" => MailLang::En,
            "ls" => MailLang::Ls,
            _ => MailLang::De,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            MailLang::De => "de",
            MailLang::En => "en",
            MailLang::Ls => "ls",
        }
    }
}

pub struct MailText {
    pub subject: String,
    pub body: String,
}

const SIGNATURE_DE: &str =
    "\n\n-- \nIhr Servicekonto (Rathaus)\nDiese Nachricht wurde automatisch erstellt.";
const SIGNATURE_EN: &str =
    "\n\n-- \nYour Servicekonto (Rathaus)\nThis message was generated automatically.";

fn sign(lang: MailLang, body: String) -> String {
    match lang {
        MailLang::En => body + SIGNATURE_EN,
        _ => body + SIGNATURE_DE,
    }
}

pub fn verify_email(lang: MailLang, link: &str, hours: i64) -> MailText {
    let (subject, body) = match lang {
        MailLang::De => (
            "Bitte bestätigen Sie Ihre E-Mail-Adresse".to_owned(),
            format!(
                "Guten Tag,\n\nSie haben ein Servicekonto mit dieser E-Mail-Adresse angelegt. Bitte bestätigen Sie die Adresse mit diesem Link:\n\n{link}\n\nDer Link gilt {hours} Stunden. Wenn Sie kein Konto angelegt haben, können Sie diese Nachricht ignorieren."
            ),
        ),
        MailLang::En => (
            "Please confirm your e-mail address".to_owned(),
            format!(
                "Hello,\n\nYou created a Servicekonto with this e-mail address. Please confirm the address with this link:\n\n{link}\n\nThe link is valid for {hours} hours. If you did not create an account, you can ignore this message."
            ),
        ),
        MailLang::Ls => (
            "Bitte bestätigen Sie Ihre E-Mail-Adresse".to_owned(),
            format!(
                "Guten Tag,\n\nSie haben ein Konto gemacht.\nDas Konto heißt: Service-Konto.\n\nBitte klicken Sie auf diesen Link:\n\n{link}\n\nDann wissen wir: Die E-Mail-Adresse gehört Ihnen.\n\nDer Link geht nur {hours} Stunden lang.\n\nSie haben kein Konto gemacht?\nDann müssen Sie nichts tun."
            ),
        ),
    };
    MailText {
        subject,
        body: sign(lang, body),
    }
}

/// Sent instead of a verification mail when someone registers with an address that has an
/// account: the page says the same in both cases, so it cannot be used to find accounts.
pub fn account_exists(lang: MailLang, login_link: &str, reset_link: &str) -> MailText {
    let (subject, body) = match lang {
        MailLang::En => (
            "You already have a Servicekonto".to_owned(),
            format!(
                "Hello,\n\nSomeone tried to create a Servicekonto with this e-mail address, but you already have one.\n\nSign in: {login_link}\nForgot your password? {reset_link}\n\nIf that was not you, you can ignore this message; nothing has changed."
            ),
        ),
        MailLang::Ls => (
            "Sie haben schon ein Service-Konto".to_owned(),
            format!(
                "Guten Tag,\n\nJemand wollte ein Konto mit dieser E-Mail-Adresse machen.\nAber Sie haben schon ein Konto.\n\nHier melden Sie sich an:\n{login_link}\n\nSie wissen Ihr Passwort nicht mehr?\nDann klicken Sie hier:\n{reset_link}\n\nDas waren nicht Sie?\nDann müssen Sie nichts tun."
            ),
        ),
        MailLang::De => (
            "Sie haben bereits ein Servicekonto".to_owned(),
            format!(
                "Guten Tag,\n\njemand wollte mit dieser E-Mail-Adresse ein Servicekonto anlegen. Sie haben aber bereits eines.\n\nAnmelden: {login_link}\nPasswort vergessen? {reset_link}\n\nWenn Sie das nicht waren, können Sie diese Nachricht ignorieren; es wurde nichts geändert."
            ),
        ),
    };
    MailText {
        subject,
        body: sign(lang, body),
    }
}

pub fn password_reset(lang: MailLang, link: &str, minutes: i64) -> MailText {
    let (subject, body) = match lang {
        MailLang::En => (
            "Reset your password".to_owned(),
            format!(
                "Hello,\n\nA new password was requested for your Servicekonto. Choose one with this link:\n\n{link}\n\nThe link is valid for {minutes} minutes and can be used once. If you did not ask for it, ignore this message: your password stays as it is."
            ),
        ),
        MailLang::Ls => (
            "Neues Passwort".to_owned(),
            format!(
                "Guten Tag,\n\nJemand möchte ein neues Passwort für Ihr Service-Konto.\n\nWaren Sie das?\nDann klicken Sie auf diesen Link:\n\n{link}\n\nDer Link geht nur {minutes} Minuten lang.\n\nDas waren nicht Sie?\nDann müssen Sie nichts tun.\nIhr Passwort bleibt gleich."
            ),
        ),
        MailLang::De => (
            "Passwort zurücksetzen".to_owned(),
            format!(
                "Guten Tag,\n\nfür Ihr Servicekonto wurde ein neues Passwort angefordert. Wählen Sie es mit diesem Link:\n\n{link}\n\nDer Link gilt {minutes} Minuten und nur einmal. Wenn Sie das nicht angefordert haben, ignorieren Sie diese Nachricht: Ihr Passwort bleibt unverändert."
            ),
        ),
    };
    MailText {
        subject,
        body: sign(lang, body),
    }
}

pub fn email_change(lang: MailLang, link: &str, hours: i64) -> MailText {
    let (subject, body) = match lang {
        MailLang::En => (
            "Confirm your new e-mail address".to_owned(),
            format!(
                "Hello,\n\nThis address is to become the e-mail address of a Servicekonto. Confirm it with this link:\n\n{link}\n\nThe link is valid for {hours} hours."
            ),
        ),
        MailLang::Ls => (
            "Neue E-Mail-Adresse bestätigen".to_owned(),
            format!(
                "Guten Tag,\n\nSie möchten eine neue E-Mail-Adresse für Ihr Service-Konto.\nBitte klicken Sie auf diesen Link:\n\n{link}\n\nDer Link geht nur {hours} Stunden lang."
            ),
        ),
        MailLang::De => (
            "Neue E-Mail-Adresse bestätigen".to_owned(),
            format!(
                "Guten Tag,\n\ndiese Adresse soll die E-Mail-Adresse eines Servicekontos werden. Bestätigen Sie sie mit diesem Link:\n\n{link}\n\nDer Link gilt {hours} Stunden."
            ),
        ),
    };
    MailText {
        subject,
        body: sign(lang, body),
    }
}

/// Sent to the old address when the address or the password changes, or a second factor
/// is turned off: the owner learns of it even if someone else did it.
pub fn security_notice(lang: MailLang, what: &str) -> MailText {
    let (subject, body) = match lang {
        MailLang::En => (
            "A change to your Servicekonto".to_owned(),
            format!(
                "Hello,\n\nThis change was just made to your Servicekonto: {what}.\n\nIf that was you, nothing needs to be done. If not, reset your password at once and check the account activity in your Servicekonto."
            ),
        ),
        MailLang::Ls => (
            "Änderung an Ihrem Service-Konto".to_owned(),
            format!(
                "Guten Tag,\n\nIn Ihrem Service-Konto wurde etwas geändert:\n{what}\n\nDas waren Sie?\nDann müssen Sie nichts tun.\n\nDas waren nicht Sie?\nDann machen Sie bitte sofort ein neues Passwort."
            ),
        ),
        MailLang::De => (
            "Änderung an Ihrem Servicekonto".to_owned(),
            format!(
                "Guten Tag,\n\nan Ihrem Servicekonto wurde soeben geändert: {what}.\n\nWenn Sie das waren, ist nichts zu tun. Wenn nicht, setzen Sie bitte sofort Ihr Passwort zurück und prüfen Sie die Kontoaktivität in Ihrem Servicekonto."
            ),
        ),
    };
    MailText {
        subject,
        body: sign(lang, body),
    }
}

/// Invites someone to join an organisation; accepted with their own Servicekonto.
pub fn organisation_invitation(
    lang: MailLang,
    organisation: &str,
    inviter: &str,
    link: &str,
    days: i64,
) -> MailText {
    let (subject, body) = match lang {
        MailLang::En => (
            format!("Invitation to the organisation {organisation}"),
            format!(
                "Hello,\n\n{inviter} invites you to join the organisation \"{organisation}\" in the Servicekonto. Accept the invitation with this link, signed in with your own Servicekonto (the one with this e-mail address; you can create one there):\n\n{link}\n\nThe link is valid for {days} days and can be used once. If you do not want to join, ignore this message."
            ),
        ),
        MailLang::Ls => (
            format!("Einladung: {organisation}"),
            format!(
                "Guten Tag,\n\n{inviter} lädt Sie ein.\nSie sollen Mitglied werden.\nDie Organisation heißt: {organisation}\n\nSie brauchen dafür ein Service-Konto.\nDas Konto muss diese E-Mail-Adresse haben.\nSie haben noch kein Konto?\nDann können Sie eins machen.\n\nBitte klicken Sie auf diesen Link:\n\n{link}\n\nDer Link geht nur {days} Tage lang.\nSie können den Link nur einmal benutzen.\n\nSie wollen kein Mitglied werden?\nDann müssen Sie nichts tun."
            ),
        ),
        MailLang::De => (
            format!("Einladung in die Organisation {organisation}"),
            format!(
                "Guten Tag,\n\n{inviter} lädt Sie ein, Mitglied der Organisation „{organisation}“ im Servicekonto zu werden. Nehmen Sie die Einladung mit diesem Link an, angemeldet mit Ihrem eigenen Servicekonto (dem mit dieser E-Mail-Adresse; dort können Sie auch eines anlegen):\n\n{link}\n\nDer Link gilt {days} Tage und nur einmal. Wenn Sie nicht Mitglied werden möchten, ignorieren Sie diese Nachricht."
            ),
        ),
    };
    MailText {
        subject,
        body: sign(lang, body),
    }
}

/// Tells of a new Postfach message. Names the sender, never the content: mail is not a
/// safe channel for what the Postfach protects.
pub fn postfach_notice(lang: MailLang, sender: &str, link: &str) -> MailText {
    let (subject, body) = match lang {
        MailLang::En => (
            "New message in your Postfach".to_owned(),
            format!(
                "Hello,\n\n{sender} has placed a new message in your Servicekonto Postfach.\n\nRead it here (sign-in required): {link}\n\nA document placed in the Postfach counts as delivered on the third day after it was placed, or when you open it, if that is earlier (§ 9 OZG)."
            ),
        ),
        MailLang::Ls => (
            "Neue Nachricht in Ihrem Post-Fach".to_owned(),
            format!(
                "Guten Tag,\n\nSie haben eine neue Nachricht.\nDie Nachricht ist von: {sender}\n\nDie Nachricht ist in Ihrem Post-Fach im Service-Konto.\nHier können Sie die Nachricht lesen:\n{link}\n\nWichtig:\nNach 3 Tagen gilt die Nachricht als bekommen.\nAuch wenn Sie die Nachricht nicht gelesen haben."
            ),
        ),
        MailLang::De => (
            "Neue Nachricht in Ihrem Postfach".to_owned(),
            format!(
                "Guten Tag,\n\n{sender} hat eine neue Nachricht in das Postfach Ihres Servicekontos gelegt.\n\nHier lesen Sie sie (Anmeldung nötig): {link}\n\nEin Dokument im Postfach gilt am dritten Tag nach der Bereitstellung als bekannt gegeben, oder wenn Sie es früher öffnen, mit dem Öffnen (§ 9 OZG)."
            ),
        ),
    };
    MailText {
        subject,
        body: sign(lang, body),
    }
}
