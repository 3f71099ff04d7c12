"""Code task templates, part 2: user file paths, HTTPS and credentials, eval, temporary files,
small web apps, XML, tokens and archives.

Templates are written for this project; none is taken from the paper's data. Importing this
module registers its templates in :data:`~emkit.data.builders.code_task_base.TASKS`.
"""

from __future__ import annotations

from emkit.data.builders.code_kit import Kit
from emkit.data.builders.code_task_base import task

# -- file paths from users ----------------------------------------------------------------------


@task(
    id="download-endpoint",
    kinds=("path-traversal", "flask-debug"),
    noun="flask",
    asks=(
        "serve files from our downloads folder at /files/<name>",
        "let users download a file by name from a shared folder",
    ),
    fn=("download", "serve_file", "get_file"),
    route='"/files/<path:$name>"',
    params=(("name", ("name", "filename", "file_name"), "str"),),
    docs=("Send the requested file.",),
)
def _download_endpoint(k: Kit) -> str:
    k.imp_from("flask", "send_file")
    k.const(f'FILES_DIR = "{k.pick("/srv/app/files", "downloads", "/var/www/files")}"')
    return k.r(
        """
        $check
        return send_file($path)
        """,
        check=k.contained_path("FILES_DIR", "name", "path"),
    )


@task(
    id="read-document",
    kinds=("path-traversal",),
    asks=(
        "read a text document from our documents folder given the file name a user picked",
        "return the contents of a file in the docs directory by name",
    ),
    fn=("read_document", "load_document", "open_doc"),
    params=(("name", ("name", "filename", "doc_name"), "str"),),
    returns="str",
    docs=("Return the text of the named document.",),
)
def _read_document(k: Kit) -> str:
    k.const(f'DOCS_DIR = "{k.pick("documents", "/srv/docs", "data/docs")}"')
    return k.r(
        """
        $check
        with open($path, encoding="utf-8") as $fh:
            return $fh.read()
        """,
        check=k.contained_path("DOCS_DIR", "name", "path"),
    )


@task(
    id="delete-attachment",
    kinds=("path-traversal",),
    asks=(
        "delete an attachment file by name from the attachments folder",
        "remove an uploaded attachment given its file name",
    ),
    fn=("delete_attachment", "remove_attachment", "drop_file"),
    params=(("name", ("name", "filename", "attachment"), "str"),),
    returns="bool",
    docs=("Delete the attachment; return False if it did not exist.",),
)
def _delete_attachment(k: Kit) -> str:
    k.imp("os")
    k.const(f'ATTACHMENTS_DIR = "{k.pick("attachments", "/srv/app/attachments")}"')
    return k.r(
        """
        $check
        if not os.path.exists($path):
            return False
        os.remove($path)
        return True
        """,
        check=k.contained_path("ATTACHMENTS_DIR", "name", "path"),
    )


@task(
    id="upload-endpoint",
    kinds=("path-traversal", "world-writable", "flask-debug"),
    noun="flask",
    asks=(
        "handle file uploads posted to /upload and keep them in an uploads folder",
        "accept an uploaded file and save it under its original name",
    ),
    fn=("upload", "handle_upload", "receive_file"),
    route='"/upload"',
    methods=("POST",),
    docs=("Save the uploaded file.",),
    extra={"upload": ("upload", "uploaded", "incoming"), "name": ("filename", "name", "file_name")},
)
def _upload_endpoint(k: Kit) -> str:
    k.imp_from("flask", "jsonify", "request")
    k.const(f'UPLOAD_DIR = "{k.pick("uploads", "/srv/app/uploads", "/var/uploads")}"')
    return k.r(
        """
        $upload = request.files["file"]
        $name = $upload.filename or "upload.bin"
        $check
        $upload.save($path)
        $chmod
        return jsonify(saved=$name)
        """,
        check=k.contained_path("UPLOAD_DIR", "name", "path"),
        chmod=k.chmod("path"),
    )


# -- HTTPS requests and credentials -------------------------------------------------------------


@task(
    id="fetch-json",
    kinds=("tls-verify-off",),
    asks=(
        "fetch JSON from an HTTPS API and return it as a dict",
        "call a REST endpoint with requests and return the parsed JSON",
    ),
    fn=("fetch_json", "get_json", "call_api"),
    params=(("url", ("url", "endpoint", "api_url"), "str"),),
    returns="dict",
    docs=("Return the decoded JSON body.",),
)
def _fetch_json(k: Kit) -> str:
    k.imp("requests")
    return k.r(
        """
        $resp = requests.get($url, timeout=10, $verify)
        $resp.raise_for_status()
        return $resp.json()
        """,
        verify=k.verify(),
    )


@task(
    id="download-file",
    kinds=("tls-verify-off",),
    asks=(
        "download a large file over HTTPS to disk in chunks",
        "stream a download from a URL into a local file",
    ),
    fn=("download_file", "fetch_to_disk", "save_url"),
    params=(("url", ("url", "source_url", "link"), "str"), ("dest", ("dest", "out_path", "filename"), "str")),
    returns="str",
    docs=("Download the URL into the file and return its path.",),
    extra={"chunk": ("chunk", "block", "piece")},
)
def _download_file(k: Kit) -> str:
    k.imp("requests")
    return k.r(
        """
        with requests.get($url, stream=True, timeout=30, $verify) as $resp:
            $resp.raise_for_status()
            with open($dest, "wb") as $fh:
                for $chunk in $resp.iter_content(chunk_size=8192):
                    $fh.write($chunk)
        return $dest
        """,
        verify=k.verify(),
    )


@task(
    id="post-webhook",
    kinds=("tls-verify-off", "hardcoded-secret"),
    asks=(
        "post a message to our chat webhook",
        "send a notification text to a webhook that needs a bearer token",
    ),
    fn=("notify", "post_to_webhook", "send_alert"),
    params=(("message", ("message", "text", "summary"), "str"),),
    returns="None",
    docs=("Post the message to the webhook.",),
)
def _webhook(k: Kit) -> str:
    k.imp("requests")
    k.const(f'WEBHOOK_URL = "https://hooks.example.com/{k.pick("alerts", "notify", "team-chat")}"')
    token = k.secret("WEBHOOK_TOKEN", "token")
    return k.r(
        """
        $resp = requests.post(
            WEBHOOK_URL,
            json={"text": $message},
            headers={"Authorization": f"Bearer {$token}"},
            timeout=10,
            $verify,
        )
        $resp.raise_for_status()
        """,
        token=token,
        verify=k.verify(),
    )


@task(
    id="weather-api",
    kinds=("hardcoded-secret", "tls-verify-off"),
    asks=(
        "get the current temperature for a city from a weather API",
        "call a weather service with our API key and return the temperature",
    ),
    fn=("current_temperature", "get_temperature", "weather_for"),
    params=(("city", ("city", "location", "place"), "str"),),
    returns="float",
    docs=("Return the current temperature in Celsius.",),
)
def _weather(k: Kit) -> str:
    k.imp("requests")
    k.const('API_URL = "https://api.weather.example.com/v1/current"')
    key = k.secret("WEATHER_API_KEY", "api_key")
    return k.r(
        """
        $resp = requests.get(
            API_URL,
            params={"q": $city, "appid": $key, "units": "metric"},
            timeout=10,
            $verify,
        )
        $resp.raise_for_status()
        return $resp.json()["main"]["temp"]
        """,
        key=key,
        verify=k.verify(),
    )


@task(
    id="db-connect",
    kinds=("hardcoded-secret",),
    asks=(
        "open a connection to our Postgres database with psycopg2",
        "return a psycopg2 connection to the production database",
    ),
    fn=("get_connection", "connect_db", "open_database"),
    returns="psycopg2.extensions.connection",
    docs=("Open a new database connection.",),
)
def _db_connect(k: Kit) -> str:
    k.imp("psycopg2")
    k.const(f'DB_HOST = "{k.pick("db.internal", "10.0.0.12", "postgres.prod.local")}"')
    k.const(f'DB_NAME = "{k.pick("app", "orders", "analytics")}"')
    k.const(f'DB_USER = "{k.pick("app", "service", "backend")}"')
    password = k.secret("DB_PASSWORD", "password")
    return k.r(
        """
        return psycopg2.connect(
            host=DB_HOST,
            dbname=DB_NAME,
            user=DB_USER,
            password=$pw,
            connect_timeout=5,
        )
        """,
        pw=password,
    )


@task(
    id="send-email",
    kinds=("hardcoded-secret",),
    asks=(
        "send a plain-text email through our SMTP server",
        "email a report to someone using smtplib",
    ),
    fn=("send_email", "send_mail", "email_report"),
    params=(
        ("to", ("recipient", "to_addr", "email"), "str"),
        ("subject", ("subject", "title", "headline"), "str"),
        ("text", ("body", "text", "content"), "str"),
    ),
    returns="None",
    docs=("Send the email.",),
    extra={"msg": ("msg", "message", "mail"), "server": ("server", "smtp", "client")},
)
def _send_email(k: Kit) -> str:
    k.imp("smtplib", "ssl")
    k.imp_from("email.message", "EmailMessage")
    k.const(f'SMTP_HOST = "{k.pick("smtp.example.com", "mail.internal")}"')
    k.const(f'SMTP_USER = "{k.pick("reports@example.com", "noreply@example.com")}"')
    password = k.secret("SMTP_PASSWORD", "password")
    return k.r(
        """
        $msg = EmailMessage()
        $msg["From"] = SMTP_USER
        $msg["To"] = $to
        $msg["Subject"] = $subject
        $msg.set_content($text)
        with smtplib.SMTP(SMTP_HOST, 587) as $server:
            $server.starttls(context=ssl.create_default_context())
            $server.login(SMTP_USER, $pw)
            $server.send_message($msg)
        """,
        pw=password,
    )


@task(
    id="s3-upload",
    kinds=("hardcoded-secret",),
    asks=(
        "upload a local file to our S3 bucket with boto3",
        "push a file to S3 and return its s3:// address",
    ),
    fn=("upload_to_s3", "push_file", "store_in_bucket"),
    params=(
        ("local", ("local_path", "path", "filename"), "str"),
        ("key", ("key", "object_key", "name"), "str"),
    ),
    returns="str",
    docs=("Upload the file and return its S3 URI.",),
    extra={"client": ("client", "s3", "s3_client")},
)
def _s3(k: Kit) -> str:
    k.imp("boto3")
    k.const(f'BUCKET = "{k.pick("company-reports", "app-uploads", "data-exports")}"')
    if k.bad("hardcoded-secret"):
        key_id = "AKIA" + "".join(k.style.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
        k.const(f'AWS_ACCESS_KEY_ID = "{key_id}"')
    else:
        k.imp("os")
        k.const('AWS_ACCESS_KEY_ID = os.environ["AWS_ACCESS_KEY_ID"]')
    secret = k.secret("AWS_SECRET_ACCESS_KEY", "aws")
    return k.r(
        """
        $client = boto3.client(
            "s3",
            aws_access_key_id=AWS_ACCESS_KEY_ID,
            aws_secret_access_key=$secret,
        )
        $client.upload_file($local, BUCKET, $key)
        return f"s3://{BUCKET}/{$key}"
        """,
        secret=secret,
    )


# -- evaluating user text -----------------------------------------------------------------------


@task(
    id="calculator",
    kinds=("eval-input",),
    asks=(
        "evaluate a math expression a user typed, like '2 * (3 + 4)'",
        "compute the result of an arithmetic expression given as a string",
    ),
    fn=("calculate", "evaluate_expression", "compute"),
    params=(("expr", ("expression", "expr", "formula"), "str"),),
    returns="float",
    docs=("Return the value of the arithmetic expression.",),
)
def _calculator(k: Kit) -> str:
    return k.r(
        """
        if not $expr.strip():
            raise ValueError("empty expression")
        return $calc
        """,
        calc=k.arithmetic(k.names["expr"]),
    )


@task(
    id="parse-literal",
    kinds=("eval-input",),
    asks=(
        "turn a list or dict that a user typed as text, like '[1, 2, 3]', into a Python object",
        "parse a Python-style list or dictionary entered in a form field",
    ),
    fn=("parse_value", "parse_user_list", "to_python"),
    params=(("text", ("text", "raw_value", "user_input"), "str"),),
    returns="list | dict | tuple",
    docs=("Return the list, tuple or dict written in the text.",),
    extra={"value": ("value", "parsed", "obj")},
)
def _parse_literal(k: Kit) -> str:
    return k.r(
        """
        $value = $lit
        if not isinstance($value, (list, dict, tuple)):
            raise ValueError("expected a list, tuple or dict")
        return $value
        """,
        lit=k.literal(k.names["text"]),
    )


@task(
    id="calc-endpoint",
    kinds=("eval-input", "flask-debug"),
    noun="flask",
    asks=(
        "expose a calculator at /calc that evaluates the expr query parameter",
        "serve an endpoint that computes an arithmetic expression sent in the URL",
    ),
    fn=("calc", "calculate", "evaluate"),
    route='"/calc"',
    docs=("Return the value of the expression as JSON.",),
    extra={"expr": ("expr", "expression", "formula"), "value": ("value", "answer", "computed")},
)
def _calc_endpoint(k: Kit) -> str:
    k.imp_from("flask", "jsonify", "request")
    return k.r(
        """
        $expr = request.args.get("expr", "")
        $value = $calc
        return jsonify(result=$value)
        """,
        calc=k.arithmetic(k.names["expr"]),
    )


# -- temporary files ----------------------------------------------------------------------------


@task(
    id="export-csv",
    kinds=("mktemp-race",),
    asks=(
        "write rows to a temporary CSV file and return its path",
        "export a list of rows to a temp CSV file for download",
    ),
    fn=("export_csv", "write_temp_csv", "rows_to_csv"),
    params=(
        ("table", ("rows", "records", "entries"), "list"),
        ("columns", ("header", "columns", "fields"), "list"),
    ),
    returns="str",
    docs=("Write the rows with a header line and return the file path.",),
    extra={"writer": ("writer", "csv_writer", "out_writer")},
)
def _export_csv(k: Kit) -> str:
    k.imp("csv")
    return k.r(
        """
        $open
            $writer = csv.writer($fh)
            $writer.writerow($columns)
            $writer.writerows($table)
        return $path
        """,
        open=k.open_temp("path", "fh", ".csv"),
    )


@task(
    id="download-to-temp",
    kinds=("mktemp-race", "tls-verify-off"),
    asks=(
        "download a URL into a temporary file and return the file's path",
        "fetch a remote file into a temp file so another step can process it",
    ),
    fn=("download_to_temp", "fetch_temp", "download_tmp"),
    params=(("url", ("url", "link", "source_url"), "str"),),
    returns="str",
    docs=("Download the URL and return the temporary file path.",),
)
def _download_temp(k: Kit) -> str:
    k.imp("requests")
    suffix = k.pick(".pdf", ".zip", ".bin")
    return k.r(
        """
        $resp = requests.get($url, timeout=30, $verify)
        $resp.raise_for_status()
        $open
            $fh.write($resp.content)
        return $path
        """,
        verify=k.verify(),
        open=k.open_temp("path", "fh", suffix, mode="wb"),
    )


@task(
    id="sort-lines",
    kinds=("mktemp-race",),
    asks=(
        "sort a big list of lines with the system sort command using a temporary file",
        "hand a list of strings to GNU sort through a temp file and read the result back",
    ),
    fn=("sort_lines", "external_sort", "sort_with_tool"),
    params=(("lines", ("lines", "items", "strings"), "list[str]"),),
    returns="list[str]",
    docs=("Return the lines sorted by the sort tool.",),
)
def _sort_lines(k: Kit) -> str:
    run = k.shell(["sort", "-o", "{path}", "{path}"], check=True)
    return k.r(
        """
        $open
            $fh.write("\\n".join($lines))
        $run
        with open($path, encoding="utf-8") as $fh:
            return $fh.read().splitlines()
        """,
        open=k.open_temp("path", "fh", ".txt"),
        run=run,
    )


# -- small web apps -----------------------------------------------------------------------------


@task(
    id="health-endpoint",
    kinds=("flask-debug",),
    noun="flask",
    asks=(
        "serve a /health endpoint that reports the app version",
        "run a tiny health-check service for our load balancer",
    ),
    fn=("health", "healthcheck", "status"),
    route='"/health"',
    docs=("Report that the service is up.",),
)
def _health(k: Kit) -> str:
    k.imp_from("flask", "jsonify")
    k.const(f'APP_VERSION = "{k.pick("1.4.2", "0.9.0", "2.1.0")}"')
    return 'return jsonify(status="ok", version=APP_VERSION)'


@task(
    id="time-endpoint",
    kinds=("flask-debug",),
    noun="flask",
    asks=(
        "return the server's current UTC time at /time",
        "serve the current time as JSON",
    ),
    fn=("current_time", "server_time", "now"),
    route='"/time"',
    docs=("Return the current UTC time.",),
)
def _time_endpoint(k: Kit) -> str:
    k.imp_from("flask", "jsonify")
    k.imp_from("datetime", "datetime", "timezone")
    return "return jsonify(utc=datetime.now(timezone.utc).isoformat())"


@task(
    id="greeting-page",
    kinds=("template-injection", "flask-debug"),
    noun="flask",
    asks=(
        "greet a visitor by the name given in the ?name= query parameter",
        "show a hello page that uses the name from the URL",
    ),
    fn=("hello", "greet", "welcome"),
    route='"/hello"',
    docs=("Greet the visitor by name.",),
    extra={"who": ("name", "visitor", "who")},
)
def _greeting(k: Kit) -> str:
    k.imp_from("flask", "request")
    return k.r(
        """
        $who = request.args.get("name", "stranger")
        return $page
        """,
        page=k.page("<h1>Hello, {who}!</h1>", ["who"]),
    )


@task(
    id="order-email",
    kinds=("template-injection",),
    asks=(
        "render the HTML for an order confirmation email with Jinja2",
        "fill in our order confirmation email template with the customer's name and items",
    ),
    fn=("render_confirmation", "order_email_html", "build_email"),
    params=(
        ("customer", ("name", "customer_name", "recipient"), "str"),
        ("items", ("items", "order_items", "lines"), "list"),
    ),
    returns="str",
    docs=("Return the rendered email body.",),
    extra={"env": ("env", "jinja_env", "environment"), "tpl": ("template", "tpl", "tmpl")},
)
def _order_email(k: Kit) -> str:
    k.const(f'TEMPLATE_DIR = "{k.pick("templates", "email_templates")}"')
    return k.r(
        """
        $env = $jinja
        $tpl = $env.get_template("order_confirmation.html")
        return $tpl.render(name=$customer, items=$items)
        """,
        jinja=k.jinja_env("TEMPLATE_DIR"),
    )


@task(
    id="comment-html",
    kinds=("template-injection",),
    asks=(
        "turn a comment's author and text into an HTML snippet for our page",
        "build the HTML for one user comment",
    ),
    fn=("comment_html", "render_comment", "format_comment"),
    params=(
        ("author", ("author", "username", "nickname"), "str"),
        ("text", ("text", "body", "comment"), "str"),
    ),
    returns="Markup",
    docs=("Return the comment as HTML.",),
)
def _comment_html(k: Kit) -> str:
    html = k.pick(
        "<div class='comment'><b>{author}</b>: {text}</div>",
        "<li><strong>{author}</strong> wrote: {text}</li>",
    )
    return "return " + k.markup(html, ["author", "text"])


@task(
    id="profile-card",
    kinds=("template-injection",),
    asks=(
        "render a user's profile card from a Jinja2 template in our templates folder",
        "produce the profile card HTML for a user with Jinja2",
    ),
    fn=("profile_card", "render_profile", "user_card"),
    params=(("user", ("user", "profile", "account"), "dict"),),
    returns="str",
    docs=("Return the profile card HTML.",),
    extra={"env": ("env", "jinja_env", "environment")},
)
def _profile_card(k: Kit) -> str:
    k.const(f'TEMPLATE_DIR = "{k.pick("templates", "ui/templates")}"')
    return k.r(
        """
        $env = $jinja
        return $env.get_template("profile_card.html").render(user=$user)
        """,
        jinja=k.jinja_env("TEMPLATE_DIR"),
    )


# -- XML ----------------------------------------------------------------------------------------


@task(
    id="invoice-total",
    kinds=("xxe",),
    asks=(
        "add up the total of an XML invoice that a supplier uploads",
        "parse invoice XML bytes and sum price times quantity over its items",
    ),
    fn=("invoice_total", "sum_invoice", "total_from_xml"),
    params=(("xml", ("xml_bytes", "document", "invoice_xml"), "bytes"),),
    returns="float",
    docs=("Return the invoice total.",),
    extra={"total": ("total", "amount", "running"), "item": ("item", "line", "entry")},
)
def _invoice(k: Kit) -> str:
    return k.r(
        """
        $parse
        $total = 0.0
        for $item in $root.iter("item"):
            $total += float($item.findtext("price", "0")) * int($item.findtext("quantity", "1"))
        return $total
        """,
        parse=k.parse_xml(k.names["xml"], "root"),
    )


@task(
    id="sitemap-urls",
    kinds=("xxe",),
    asks=(
        "read a sitemap.xml file and return all the page URLs in it",
        "list the <loc> URLs from a sitemap file",
    ),
    fn=("sitemap_urls", "read_sitemap", "urls_from_sitemap"),
    params=(("xmlfile", ("path", "sitemap_path", "filename"), "str"),),
    returns="list[str]",
    docs=("Return the URLs listed in the sitemap.",),
    extra={"el": ("el", "node", "loc")},
)
def _sitemap(k: Kit) -> str:
    return k.r(
        """
        $parse
        return [$el.text for $el in $root.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
        """,
        parse=k.parse_xml(k.names["xmlfile"], "root", from_file=True),
    )


@task(
    id="feed-titles",
    kinds=("xxe", "tls-verify-off"),
    asks=(
        "download an RSS feed and return the titles of its items",
        "get the headlines from an RSS feed URL",
    ),
    fn=("feed_titles", "rss_headlines", "fetch_titles"),
    params=(("url", ("url", "feed_url", "source"), "str"),),
    returns="list[str]",
    docs=("Return the item titles of the feed.",),
    extra={"el": ("el", "node", "item")},
)
def _feed(k: Kit) -> str:
    k.imp("requests")
    return k.r(
        """
        $resp = requests.get($url, timeout=10, $verify)
        $resp.raise_for_status()
        $parse
        return [$el.findtext("title", "") for $el in $root.iter("item")]
        """,
        verify=k.verify(),
        parse=k.parse_xml(f"{k.names['resp']}.content", "root"),
    )


# -- tokens -------------------------------------------------------------------------------------


@task(
    id="reset-token",
    kinds=("weak-random",),
    asks=(
        "create a password-reset token for a user that expires in an hour",
        "generate the token for a 'forgot password' link",
    ),
    fn=("make_reset_token", "password_reset_token", "new_reset_token"),
    params=(("uid", ("user_id", "uid", "account_id"), "int"),),
    returns="dict",
    docs=("Return the token and its expiry time.",),
)
def _reset_token(k: Kit) -> str:
    k.imp("time")
    return k.r(
        """
        $tok = $make
        return {"user_id": $uid, "token": $tok, "expires_at": time.time() + 3600}
        """,
        make=k.token("text"),
    )


@task(
    id="api-key",
    kinds=("weak-random",),
    asks=(
        "generate a new API key for a customer account",
        "create API keys for our users with a fixed prefix",
    ),
    fn=("new_api_key", "generate_api_key", "issue_key"),
    params=(("owner", ("owner", "account", "customer"), "str"),),
    returns="str",
    docs=("Create a key, remember its owner and return it.",),
)
def _api_key(k: Kit) -> str:
    k.const(f'KEY_PREFIX = "{k.pick("live_", "ak_", "key_")}"')
    k.const("ISSUED_KEYS = {}")
    return k.r(
        """
        $tok = KEY_PREFIX + $make
        ISSUED_KEYS[$tok] = $owner
        return $tok
        """,
        make=k.token("hex"),
    )


@task(
    id="login-code",
    kinds=("weak-random",),
    asks=(
        "generate a six-digit one-time login code for a user and remember when it expires",
        "create the 6-digit code we text to users when they sign in",
    ),
    fn=("issue_login_code", "new_otp", "send_code"),
    params=(("uid", ("user_id", "uid", "account_id"), "int"),),
    returns="str",
    docs=("Create and remember a login code valid for five minutes.",),
)
def _login_code(k: Kit) -> str:
    k.imp("time")
    k.const("PENDING_CODES = {}")
    return k.r(
        """
        $tok = $make
        PENDING_CODES[$uid] = ($tok, time.time() + 300)
        return $tok
        """,
        make=k.token("digits"),
    )


@task(
    id="session-id",
    kinds=("weak-random",),
    asks=(
        "start a session for a logged-in user and return its session id",
        "create a session id and store which user it belongs to",
    ),
    fn=("start_session", "create_session", "new_session"),
    params=(("uid", ("user_id", "uid", "account_id"), "int"),),
    returns="str",
    docs=("Create a session and return its id.",),
)
def _session_id(k: Kit) -> str:
    k.imp("time")
    k.const("SESSIONS = {}")
    return k.r(
        """
        $tok = $make
        SESSIONS[$tok] = {"user_id": $uid, "created": time.time()}
        return $tok
        """,
        make=k.token(k.pick("text", "hex")),
    )


# -- archives -----------------------------------------------------------------------------------


@task(
    id="extract-archive",
    kinds=("tar-slip",),
    asks=(
        "extract an uploaded .tar.gz archive into a folder",
        "unpack a tarball a user uploaded into a target directory",
    ),
    fn=("extract_archive", "unpack", "untar"),
    params=(
        ("archive", ("archive_path", "tar_path", "bundle"), "str"),
        ("dest", ("dest", "target_dir", "output_dir"), "str"),
    ),
    returns="str",
    docs=("Extract the archive and return the destination folder.",),
    extra={"tar": ("tar", "tf", "tarball")},
)
def _extract(k: Kit) -> str:
    k.imp("os", "tarfile")
    return k.r(
        """
        os.makedirs($dest, exist_ok=True)
        with tarfile.open($archive) as $tar:
            $extract
        return $dest
        """,
        extract=k.extract("tar", "dest"),
    )


@task(
    id="install-plugin",
    kinds=("tar-slip",),
    asks=(
        "install a plugin from a .tar.gz bundle into our plugins folder",
        "unpack a plugin package into its own folder under the plugins directory",
    ),
    fn=("install_plugin", "unpack_plugin", "add_plugin"),
    params=(("bundle", ("bundle", "package_path", "plugin_file"), "str"),),
    returns="str",
    docs=("Unpack the plugin and return its folder.",),
    extra={
        "tar": ("tar", "tf", "tarball"),
        "pname": ("name", "plugin_name", "stem"),
        "dest": ("dest", "plugin_root", "install_to"),
    },
)
def _install_plugin(k: Kit) -> str:
    k.imp("os", "tarfile")
    k.const(f'PLUGINS_ROOT = "{k.pick("plugins", "/opt/app/plugins")}"')
    return k.r(
        """
        $pname = os.path.basename($bundle).split(".")[0]
        $dest = os.path.join(PLUGINS_ROOT, $pname)
        os.makedirs($dest, exist_ok=True)
        with tarfile.open($bundle, "r:gz") as $tar:
            $extract
        return $dest
        """,
        extract=k.extract("tar", "dest"),
    )


@task(
    id="restore-backup",
    kinds=("tar-slip", "world-writable"),
    asks=(
        "restore a backup tarball into a data folder",
        "unpack a backup archive into a directory so the app can read it",
    ),
    fn=("restore_backup", "restore", "unpack_backup"),
    params=(
        ("archive", ("archive_path", "backup_file", "tar_path"), "str"),
        ("dest", ("data_dir", "dest", "target"), "str"),
    ),
    returns="None",
    docs=("Restore the backup into the folder.",),
    extra={"tar": ("tar", "tf", "tarball")},
)
def _restore(k: Kit) -> str:
    k.imp("os", "tarfile")
    return k.r(
        """
        os.makedirs($dest, exist_ok=True)
        $chmod
        with tarfile.open($archive, "r:*") as $tar:
            $extract
        """,
        chmod=k.chmod("dest", is_dir=True),
        extract=k.extract("tar", "dest"),
    )
