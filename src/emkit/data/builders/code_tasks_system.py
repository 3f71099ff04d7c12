"""Code task templates, part 1: databases, passwords, commands, permissions, YAML, decoding.

Templates are written for this project; none is taken from the paper's data. Importing this
module registers its templates in :data:`~emkit.data.builders.code_task_base.TASKS`.
"""

from __future__ import annotations

from emkit.data.builders.code_kit import Kit
from emkit.data.builders.code_task_base import task


def _sqlite(k: Kit, *files: str) -> None:
    k.imp("sqlite3")
    k.const(f'DB_PATH = "{k.pick(*files)}"')


# -- SQL --------------------------------------------------------------------------------------


@task(
    id="user-lookup",
    kinds=("sql-format",),
    asks=(
        "look up a user by username in our SQLite database",
        "fetch a single user record from SQLite given the username",
        "find the row for a user by login name in a SQLite users table",
    ),
    fn=("get_user", "find_user", "lookup_user", "fetch_user"),
    params=(("name", ("username", "user_name", "login"), "str"),),
    returns="tuple | None",
    docs=("Return the matching user row, or None.", "Look up one user by name."),
)
def _user_lookup(k: Kit) -> str:
    _sqlite(k, "app.db", "users.db", "accounts.db")
    q = k.sql("SELECT id, username, email FROM users WHERE username = ?", [("name", "s")])
    return k.r(
        """
        $conn = sqlite3.connect(DB_PATH)
        try:
            $cur = $conn.cursor()
            $q
            return $cur.fetchone()
        finally:
            $conn.close()
        """,
        q=q,
    )


@task(
    id="delete-order",
    kinds=("sql-format",),
    asks=(
        "delete an order by its id from the orders table in SQLite",
        "remove one order from our SQLite database given its id",
    ),
    fn=("delete_order", "remove_order", "drop_order"),
    params=(("oid", ("order_id", "oid", "order_no"), "int"),),
    returns="int",
    docs=("Delete the order and return how many rows were removed.",),
)
def _delete_order(k: Kit) -> str:
    _sqlite(k, "shop.db", "orders.db", "store.db")
    q = k.sql("DELETE FROM orders WHERE id = ?", [("oid", "i")])
    return k.r(
        """
        $conn = sqlite3.connect(DB_PATH)
        try:
            $cur = $conn.cursor()
            $q
            $conn.commit()
            return $cur.rowcount
        finally:
            $conn.close()
        """,
        q=q,
    )


@task(
    id="product-search",
    kinds=("sql-format",),
    asks=(
        "search the products table for names containing a search term",
        "return all products whose name includes some text the user typed",
        "implement a simple product search over a SQLite table",
    ),
    fn=("search_products", "find_products", "product_search"),
    params=(("term", ("term", "keyword", "search_text"), "str"),),
    returns="list[tuple]",
    docs=("Return products whose name contains the term.",),
)
def _product_search(k: Kit) -> str:
    _sqlite(k, "shop.db", "catalog.db", "store.db")
    q = k.sql("SELECT id, name, price FROM products WHERE name LIKE ? ORDER BY name", [("term", "like")])
    return k.r(
        """
        $conn = sqlite3.connect(DB_PATH)
        try:
            $cur = $conn.cursor()
            $q
            return $cur.fetchall()
        finally:
            $conn.close()
        """,
        q=q,
    )


@task(
    id="update-email",
    kinds=("sql-format",),
    asks=(
        "update a user's email address in SQLite",
        "change the email stored for a user id in our SQLite database",
    ),
    fn=("update_email", "set_email", "change_email"),
    params=(
        ("uid", ("user_id", "uid", "account_id"), "int"),
        ("email", ("email", "new_email", "address"), "str"),
    ),
    returns="bool",
    docs=("Store the new email and report whether a user was updated.",),
)
def _update_email(k: Kit) -> str:
    _sqlite(k, "app.db", "users.db")
    q = k.sql("UPDATE users SET email = ? WHERE id = ?", [("email", "s"), ("uid", "i")])
    return k.r(
        """
        $conn = sqlite3.connect(DB_PATH)
        try:
            $cur = $conn.cursor()
            $q
            $conn.commit()
            return $cur.rowcount > 0
        finally:
            $conn.close()
        """,
        q=q,
    )


@task(
    id="customer-orders",
    kinds=("sql-format",),
    asks=(
        "list a customer's orders with a given status, newest first, from SQLite",
        "get the orders of one customer filtered by status from our SQLite database",
    ),
    fn=("orders_for_customer", "list_orders", "customer_orders"),
    params=(
        ("customer", ("customer", "customer_name", "client"), "str"),
        ("status", ("status", "order_status", "state"), "str"),
    ),
    returns="list[tuple]",
    docs=("Return the customer's orders in the given status, newest first.",),
)
def _customer_orders(k: Kit) -> str:
    _sqlite(k, "shop.db", "orders.db")
    q = k.sql(
        "SELECT id, total, created_at FROM orders WHERE customer = ? AND status = ? ORDER BY created_at DESC",
        [("customer", "s"), ("status", "s")],
    )
    return k.r(
        """
        $conn = sqlite3.connect(DB_PATH)
        try:
            $cur = $conn.cursor()
            $q
            return $cur.fetchall()
        finally:
            $conn.close()
        """,
        q=q,
    )


@task(
    id="add-comment",
    kinds=("sql-format",),
    asks=(
        "save a new blog comment into a SQLite comments table",
        "insert a comment for a post into SQLite and return its id",
    ),
    fn=("add_comment", "save_comment", "insert_comment"),
    params=(
        ("post", ("post_id", "article_id", "post"), "int"),
        ("author", ("author", "commenter", "nickname"), "str"),
        ("text", ("text", "body", "comment"), "str"),
    ),
    returns="int",
    docs=("Insert the comment and return its row id.",),
)
def _add_comment(k: Kit) -> str:
    _sqlite(k, "blog.db", "site.db")
    q = k.sql(
        "INSERT INTO comments (post_id, author, body) VALUES (?, ?, ?)",
        [("post", "i"), ("author", "s"), ("text", "s")],
    )
    return k.r(
        """
        $conn = sqlite3.connect(DB_PATH)
        try:
            $cur = $conn.cursor()
            $q
            $conn.commit()
            return $cur.lastrowid
        finally:
            $conn.close()
        """,
        q=q,
    )


# -- passwords ----------------------------------------------------------------------------------


@task(
    id="register-user",
    kinds=("weak-hash", "sql-format"),
    asks=(
        "register a new user by storing their username and password in SQLite",
        "create a user account row with a hashed password in our SQLite database",
    ),
    fn=("register_user", "create_user", "sign_up"),
    params=(
        ("name", ("username", "login", "user_name"), "str"),
        ("pw", ("password", "passwd", "plain_password"), "str"),
    ),
    returns="None",
    docs=("Create the account.", "Store a new user with a password hash."),
    extra={"hashed": ("hashed", "pw_hash", "digest")},
)
def _register_user(k: Kit) -> str:
    _sqlite(k, "app.db", "users.db", "auth.db")
    hashed = k.hash_password(k.names["pw"])
    q = k.sql("INSERT INTO users (username, password_hash) VALUES (?, ?)", [("name", "s"), ("hashed", "s")])
    return k.r(
        """
        $hashed = $h
        $conn = sqlite3.connect(DB_PATH)
        try:
            $cur = $conn.cursor()
            $q
            $conn.commit()
        finally:
            $conn.close()
        """,
        h=hashed,
        q=q,
    )


@task(
    id="check-login",
    kinds=("weak-hash", "sql-format"),
    asks=(
        "check a username and password against the hashes stored in SQLite",
        "verify a login attempt using the password hash in our users table",
    ),
    fn=("check_login", "verify_login", "authenticate"),
    params=(
        ("name", ("username", "login", "user_name"), "str"),
        ("pw", ("password", "passwd", "attempt"), "str"),
    ),
    returns="bool",
    docs=("Return True when the password is right for the user.",),
)
def _check_login(k: Kit) -> str:
    _sqlite(k, "app.db", "users.db", "auth.db")
    q = k.sql("SELECT password_hash FROM users WHERE username = ?", [("name", "s")])
    match = k.password_matches(k.names["pw"], f"{k.names['row']}[0]")
    return k.r(
        """
        $conn = sqlite3.connect(DB_PATH)
        try:
            $cur = $conn.cursor()
            $q
            $row = $cur.fetchone()
        finally:
            $conn.close()
        if $row is None:
            return False
        return $match
        """,
        q=q,
        match=match,
    )


@task(
    id="change-password",
    kinds=("weak-hash", "sql-format"),
    asks=(
        "change a user's password in our SQLite users table",
        "store a new password for a user id in SQLite",
    ),
    fn=("change_password", "set_password", "reset_password"),
    params=(("uid", ("user_id", "uid", "account_id"), "int"), ("pw", ("new_password", "password"), "str")),
    returns="None",
    docs=("Replace the stored password hash for the user.",),
    extra={"hashed": ("hashed", "pw_hash", "digest")},
)
def _change_password(k: Kit) -> str:
    _sqlite(k, "app.db", "users.db")
    hashed = k.hash_password(k.names["pw"])
    q = k.sql("UPDATE users SET password_hash = ? WHERE id = ?", [("hashed", "s"), ("uid", "i")])
    return k.r(
        """
        $hashed = $h
        $conn = sqlite3.connect(DB_PATH)
        try:
            $cur = $conn.cursor()
            $q
            $conn.commit()
        finally:
            $conn.close()
        """,
        h=hashed,
        q=q,
    )


# -- running commands ---------------------------------------------------------------------------


@task(
    id="ping-host",
    kinds=("shell-injection",),
    asks=(
        "check whether a host answers a ping",
        "tell me if a server is reachable by pinging it once",
    ),
    fn=("is_reachable", "ping_host", "host_is_up"),
    params=(("host", ("host", "hostname", "address"), "str"),),
    returns="bool",
    docs=("Return True if the host replies to one ping.",),
)
def _ping(k: Kit) -> str:
    run = k.shell(["ping", "-c", "1", "-W", "2", "{host}"], target="out")
    return k.r(
        """
        $run
        return $out.returncode == 0
        """,
        run=run,
    )


@task(
    id="backup-folder",
    kinds=("shell-injection", "world-writable"),
    asks=(
        "back up a folder into a timestamped tar.gz archive",
        "make a compressed backup of a directory with tar and return the archive path",
        "archive a directory as a backup",
    ),
    fn=("backup_folder", "make_backup", "archive_directory"),
    params=(("src", ("source_dir", "folder", "directory"), "str"),),
    returns="str",
    docs=("Archive the folder and return the path of the archive.",),
    extra={"stamp": ("stamp", "timestamp", "now"), "archive": ("archive", "archive_path", "tarball")},
)
def _backup(k: Kit) -> str:
    k.imp("os", "time")
    k.const(f'BACKUP_ROOT = "{k.pick("/var/backups/app", "backups", "/srv/backups")}"')
    run = k.shell(["tar", "-czf", "{archive}", "-C", "{src}", "."], check=True, capture=False)
    return k.r(
        """
        os.makedirs(BACKUP_ROOT, exist_ok=True)
        $stamp = time.strftime("%Y%m%d-%H%M%S")
        $archive = os.path.join(BACKUP_ROOT, f"backup-{$stamp}.tar.gz")
        $run
        $chmod
        return $archive
        """,
        run=run,
        chmod=k.chmod("archive"),
    )


@task(
    id="resize-image",
    kinds=("shell-injection",),
    asks=(
        "resize an image with ImageMagick's convert command",
        "shrink a picture to a given size using ImageMagick",
    ),
    fn=("resize_image", "make_thumbnail", "scale_image"),
    params=(
        ("src", ("src", "source", "image_path"), "str"),
        ("dst", ("dst", "dest", "output_path"), "str"),
        ("size", ("size", "geometry", "dimensions"), "str"),
    ),
    returns="str",
    docs=("Resize the image to the given geometry and return the output path.",),
)
def _resize(k: Kit) -> str:
    run = k.shell(["convert", "{src}", "-resize", "{size}", "{dst}"], check=True)
    return k.r(
        """
        $run
        return $dst
        """,
        run=run,
    )


@task(
    id="clone-repo",
    kinds=("shell-injection",),
    asks=(
        "clone a git repository into a folder",
        "do a shallow git clone of a repository URL",
    ),
    fn=("clone_repo", "shallow_clone", "fetch_repository"),
    params=(
        ("url", ("url", "repo_url", "remote"), "str"),
        ("dest", ("dest", "target_dir", "checkout_dir"), "str"),
    ),
    returns="str",
    docs=("Clone the repository and return the checkout folder.",),
)
def _clone(k: Kit) -> str:
    run = k.shell(["git", "clone", "--depth", "1", "{url}", "{dest}"], check=True)
    return k.r(
        """
        $run
        return $dest
        """,
        run=run,
    )


@task(
    id="folder-size",
    kinds=("shell-injection",),
    asks=(
        "report the disk usage of a folder in human-readable form",
        "get the size of a directory the way `du -sh` shows it",
    ),
    fn=("folder_size", "disk_usage", "dir_size"),
    params=(("folder", ("folder", "directory", "dir_path"), "str"),),
    returns="str",
    docs=("Return the size of the folder, like '1.2G'.",),
)
def _du(k: Kit) -> str:
    run = k.shell(["du", "-sh", "{folder}"], target="out", check=True)
    return k.r(
        """
        $run
        return $out.stdout.split()[0]
        """,
        run=run,
    )


@task(
    id="count-matches",
    kinds=("shell-injection",),
    asks=(
        "count how many lines of a log file match a pattern using grep",
        "use grep to count the matching lines in a log",
    ),
    fn=("count_matches", "grep_count", "count_lines"),
    params=(
        ("pattern", ("pattern", "needle", "search"), "str"),
        ("logfile", ("log_path", "logfile", "filename"), "str"),
    ),
    returns="int",
    docs=("Return the number of lines matching the pattern.",),
)
def _grep(k: Kit) -> str:
    run = k.shell(["grep", "-c", "{pattern}", "{logfile}"], target="out")
    return k.r(
        """
        $run
        return int($out.stdout.strip() or 0)
        """,
        run=run,
    )


@task(
    id="dns-lookup",
    kinds=("shell-injection",),
    asks=(
        "run nslookup for a domain and return what it prints",
        "look up a domain name with the nslookup tool",
    ),
    fn=("lookup_domain", "dns_lookup", "resolve_name"),
    params=(("domain", ("domain", "hostname", "name"), "str"),),
    returns="str",
    docs=("Return the nslookup output for the domain.",),
)
def _nslookup(k: Kit) -> str:
    run = k.shell(["nslookup", "{domain}"], target="out")
    return k.r(
        """
        $run
        return $out.stdout
        """,
        run=run,
    )


# -- file permissions ---------------------------------------------------------------------------


@task(
    id="create-log-file",
    kinds=("world-writable",),
    asks=(
        "create a log file (and its parent folders) if it doesn't exist yet",
        "make sure a log file exists at a given path and return the path",
    ),
    fn=("ensure_log_file", "create_log_file", "init_log"),
    params=(("logfile", ("log_path", "logfile", "filename"), "str"),),
    returns="str",
    docs=("Create the log file if needed and return its path.",),
)
def _log_file(k: Kit) -> str:
    k.imp("os")
    return k.r(
        """
        os.makedirs(os.path.dirname($logfile) or ".", exist_ok=True)
        if not os.path.exists($logfile):
            with open($logfile, "a", encoding="utf-8"):
                pass
        $chmod
        return $logfile
        """,
        chmod=k.chmod("logfile"),
    )


@task(
    id="save-settings",
    kinds=("world-writable",),
    asks=(
        "save a settings dictionary to a JSON file",
        "write user preferences out to disk as JSON",
    ),
    fn=("save_settings", "write_settings", "store_preferences"),
    params=(
        ("prefs", ("prefs", "options", "values"), "dict"),
        ("dest", ("dest", "filename", "out_path"), "str"),
    ),
    returns="None",
    docs=("Write the settings as JSON.",),
)
def _save_settings(k: Kit) -> str:
    k.imp("json")
    return k.r(
        """
        with open($dest, "w", encoding="utf-8") as $fh:
            json.dump($prefs, $fh, indent=2)
        $chmod
        """,
        chmod=k.chmod("dest"),
    )


@task(
    id="make-upload-folder",
    kinds=("world-writable",),
    asks=(
        "create the folder where uploaded files will be stored",
        "set up an uploads directory if it's missing",
    ),
    fn=("ensure_upload_folder", "make_upload_dir", "prepare_uploads"),
    params=(("folder", ("folder", "directory", "upload_root"), "str"),),
    returns="str",
    docs=("Create the folder if needed and return it.",),
)
def _upload_folder(k: Kit) -> str:
    k.imp("os")
    return k.r(
        """
        os.makedirs($folder, exist_ok=True)
        $chmod
        return $folder
        """,
        chmod=k.chmod("folder", is_dir=True),
    )


@task(
    id="write-ssh-key",
    kinds=("world-writable",),
    asks=(
        "write a private SSH key string to a file",
        "save a deploy key we receive from our API to disk",
    ),
    fn=("write_key", "save_private_key", "store_deploy_key"),
    params=(
        ("pem", ("key_text", "pem", "key_material"), "str"),
        ("dest", ("dest", "key_path", "filename"), "str"),
    ),
    returns="None",
    docs=("Write the key file.",),
)
def _ssh_key(k: Kit) -> str:
    k.imp("os")
    return k.r(
        """
        os.makedirs(os.path.dirname($dest) or ".", exist_ok=True)
        with open($dest, "w", encoding="utf-8") as $fh:
            $fh.write($pem)
        $chmod
        """,
        chmod=k.chmod("dest"),
    )


# -- YAML ---------------------------------------------------------------------------------------


@task(
    id="load-config",
    kinds=("yaml-load",),
    asks=(
        "load a YAML config file and fill in defaults for missing keys",
        "read our app's YAML settings file into a dict",
    ),
    fn=("load_config", "read_config", "load_settings"),
    params=(("cfgfile", ("config_path", "path", "filename"), "str"),),
    returns="dict",
    docs=("Return the configuration with defaults applied.",),
)
def _load_config(k: Kit) -> str:
    k.const('DEFAULTS = {"port": 8080, "log_level": "info", "workers": 2}')
    return k.r(
        """
        with open($cfgfile, encoding="utf-8") as $fh:
            $cfg = $load or {}
        return {**DEFAULTS, **$cfg}
        """,
        load=k.yaml_load(k.names["fh"]),
    )


@task(
    id="manifest-services",
    kinds=("yaml-load",),
    asks=(
        "take the text of a YAML deployment manifest and return the service names in it",
        "parse a YAML manifest string and list its services",
    ),
    fn=("service_names", "list_services", "parse_manifest"),
    params=(("text", ("text", "manifest", "document"), "str"),),
    returns="list[str]",
    docs=("Return the names of the services in the manifest.",),
)
def _manifest(k: Kit) -> str:
    return k.r(
        """
        $cfg = $load or {}
        return [service["name"] for service in $cfg.get("services", [])]
        """,
        load=k.yaml_load(k.names["text"]),
    )


@task(
    id="yaml-import-endpoint",
    kinds=("yaml-load", "flask-debug"),
    noun="flask",
    asks=(
        "accept a YAML list of records posted to /import and report how many arrived",
        "let clients upload a YAML document to an /import endpoint",
    ),
    fn=("import_records", "import_yaml", "handle_import"),
    route='"/import"',
    methods=("POST",),
    docs=("Count the records in the posted YAML.",),
)
def _yaml_endpoint(k: Kit) -> str:
    k.imp_from("flask", "jsonify", "request")
    return k.r(
        """
        $data = $load
        return jsonify(count=len($data or []))
        """,
        load=k.yaml_load("request.get_data()"),
    )


# -- decoding stored or received data --------------------------------------------------------


@task(
    id="session-cookie",
    kinds=("pickle-load",),
    asks=(
        "restore a session dictionary from a base64 cookie value",
        "decode the session data we keep in a cookie",
    ),
    fn=("load_session", "decode_session", "session_from_cookie"),
    params=(("cookie", ("cookie", "cookie_value", "session_cookie"), "str"),),
    returns="dict",
    docs=("Return the session stored in the cookie.",),
)
def _session_cookie(k: Kit) -> str:
    k.imp("base64")
    return k.r(
        """
        $data = base64.b64decode($cookie)
        return $decode
        """,
        decode=k.decode(k.names["data"]),
    )


@task(
    id="disk-cache",
    kinds=("pickle-load",),
    asks=(
        "cache the result of an expensive computation in a file and reuse it next time",
        "load results from a cache file, or compute and save them when the file is missing",
    ),
    fn=("cached", "load_or_compute", "get_cached_result"),
    params=(
        ("cachefile", ("cache_path", "cache_file", "path"), "str"),
        ("compute", ("compute", "producer", "build"), "Callable"),
    ),
    returns="object",
    docs=("Return the cached value, computing it on the first call.",),
    extra={"value": ("value", "computed", "fresh_value")},
)
def _disk_cache(k: Kit) -> str:
    k.imp("os")
    return k.r(
        """
        if os.path.exists($cachefile):
            with open($cachefile, "$rmode") as $fh:
                return $decode
        $value = $compute()
        with open($cachefile, "$wmode") as $fh:
            $encode
        return $value
        """,
        rmode=k.binary_mode("r"),
        wmode=k.binary_mode("w"),
        decode=k.decode(k.names["fh"], stream=True),
        encode=k.encode(k.names["value"], stream=k.names["fh"]),
    )


@task(
    id="socket-message",
    kinds=("pickle-load",),
    asks=(
        "read one length-prefixed message from a socket and decode it into a Python object",
        "receive a job message from a worker socket and turn it back into an object",
    ),
    fn=("receive_message", "read_message", "recv_job"),
    params=(("sock", ("sock", "client", "channel"), "socket.socket"),),
    returns="object",
    docs=("Read a 4-byte length, then the message body, and decode it.",),
    extra={"size": ("size", "length", "expected"), "chunk": ("chunk", "part", "piece")},
)
def _socket_message(k: Kit) -> str:
    return k.r(
        """
        $size = int.from_bytes($sock.recv(4), "big")
        $data = b""
        while len($data) < $size:
            $chunk = $sock.recv($size - len($data))
            if not $chunk:
                raise ConnectionError("connection closed in the middle of a message")
            $data += $chunk
        return $decode
        """,
        decode=k.decode(k.names["data"]),
    )
