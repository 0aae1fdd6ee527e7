//! Server-rendered pages with minijinja; templates are compiled into the binary and
//! auto-escaped (they end in `.html`).

use minijinja::Environment;

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("macros.html", include_str!("../templates/macros.html")),
            ("home.html", include_str!("../templates/home.html")),
            ("finder.html", include_str!("../templates/finder.html")),
            (
                "authority.html",
                include_str!("../templates/authority.html"),
            ),
            ("legal.html", include_str!("../templates/legal.html")),
            ("error.html", include_str!("../templates/error.html")),
            (
                "oidc_consent.html",
                include_str!("../templates/oidc_consent.html"),
            ),
            (
                "oidc_logout.html",
                include_str!("../templates/oidc_logout.html"),
            ),
            (
                "oidc_error.html",
                include_str!("../templates/oidc_error.html"),
            ),
            (
                "admin_clients.html",
                include_str!("../templates/admin_clients.html"),
            ),
            ("konto.html", include_str!("../templates/konto.html")),
            (
                "konto_form.html",
                include_str!("../templates/konto_form.html"),
            ),
            (
                "konto_message.html",
                include_str!("../templates/konto_message.html"),
            ),
            (
                "konto_totp.html",
                include_str!("../templates/konto_totp.html"),
            ),
            (
                "konto_recovery.html",
                include_str!("../templates/konto_recovery.html"),
            ),
            (
                "demo_mails.html",
                include_str!("../templates/demo_mails.html"),
            ),
            ("postfach.html", include_str!("../templates/postfach.html")),
            (
                "postfach_message.html",
                include_str!("../templates/postfach_message.html"),
            ),
            (
                "postfach_locked.html",
                include_str!("../templates/postfach_locked.html"),
            ),
            (
                "konto_organisationen.html",
                include_str!("../templates/konto_organisationen.html"),
            ),
            (
                "konto_organisation.html",
                include_str!("../templates/konto_organisation.html"),
            ),
            (
                "konto_profil.html",
                include_str!("../templates/konto_profil.html"),
            ),
            (
                "konto_einwilligungen.html",
                include_str!("../templates/konto_einwilligungen.html"),
            ),
            (
                "konto_passkeys.html",
                include_str!("../templates/konto_passkeys.html"),
            ),
            (
                "passkey_login.html",
                include_str!("../templates/passkey_login.html"),
            ),
        ] {
            // The templates are part of the program: one that does not compile is a bug the
            // tests catch, so the panic here cannot come from input.
            if let Err(e) = env.add_template(name, source) {
                panic!("template {name} does not compile: {e}");
            }
        }
        Templates { env }
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}
