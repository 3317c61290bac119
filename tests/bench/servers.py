"""The servers of tests/bench/bench.py, each in its own directory under the run's temporary
directory, bound to 127.0.0.1 only: postern, a private Postfix instance (the SMTP baseline),
a private Dovecot (the IMAP baseline), Postfix's smtp-sink (a remote MX) and dnsmasq (the
DNS). Every started server is recorded in `RUNNING` and `stop_all()` stops what is left (the
bench calls it on exit, Ctrl-C included).
"""
import os, shutil, signal, socket, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSTERN = [os.path.join(ROOT, "target", "release", "postern")]  # set by bench.py --bin
PASSWORD = "pw"
# Started servers not yet stopped, newest last.
RUNNING = []


def postern_bin():
    return POSTERN[0]


def stop_all():
    while RUNNING:
        srv = RUNNING.pop()
        try:
            srv.stop()
        except Exception as e:  # keep stopping the others
            print(f"bench: stopping {type(srv).__name__}: {e}")


def _started(srv):
    RUNNING.append(srv)


def _stopped(srv):
    if srv in RUNNING:
        RUNNING.remove(srv)


def bench_dir(prefix, parent=None):
    """A temporary directory for a benchmark whose subdirectories (one per server run) each
    get a block group of their own. On ext4 a new inode is searched for from the start of
    its parent directory's group, and on ext4 *without a journal* (this project's test VMs)
    every inode freed in the last 60-360 s is skipped one by one (`recently_deleted()` in
    fs/ext4/ialloc.c): a run started in a group where the previous run, or a build, has
    just deleted thousands of files pays up to ~1 ms of kernel CPU per file it creates
    (measured: 836 us against 20 us per create). The Orlov allocator spreads the
    subdirectories of a directory flagged "top of hierarchy" (`chattr +T`) over the block
    groups, so every run, postern's and the baseline's alike, starts clean and pays only for
    its own deletions. A journaled ext4 (the usual VPS) never does that search."""
    import tempfile
    d = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(d, 0o755)
    if subprocess.run(["chattr", "+T", d], capture_output=True).returncode:
        print(f"bench: chattr +T {d} failed (not ext4?): runs share a block group", flush=True)
    return d


def run_dir(tmp, name):
    """A fresh path for one server run under a `bench_dir`: the name plus a random suffix,
    because Orlov picks a spread directory's block group from a hash of its name (a fixed
    name such as `postern-in-0` would land in the same group in every bench run, right
    where the last run's files were deleted)."""
    return os.path.join(tmp, f"{name}-{os.urandom(4).hex()}")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_port(port, timeout=60, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before opening port {port}")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close(); return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def wait_gone(pid, timeout=20):
    end = time.time() + timeout
    while os.path.exists(f"/proc/{pid}") and time.time() < end:
        time.sleep(0.05)


def kill_proc(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill(); proc.wait()


def maildir_tree(path, folders=()):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
        for f in folders:
            os.makedirs(os.path.join(path, "." + f, sub), exist_ok=True)


# ---------------------------------------------------------------- postern
class Postern:
    def __init__(self, tmp, name="postern", extra="", verify=False, users=("user",), dns_port=None):
        self.dir = run_dir(tmp, name)
        os.makedirs(os.path.join(self.dir, "data"))
        self.smtp, self.imap, self.imaps = free_port(), free_port(), free_port()
        self.cfg = os.path.join(self.dir, "postern.toml")
        dns = f'[dns]\nnameservers = ["127.0.0.1:{dns_port}"]\ntimeout_secs = 2\n' if dns_port else ""
        with open(self.cfg, "w") as f:
            f.write(f'domain = "example.test"\nhostname = "mail.example.test"\ndata_dir = "{self.dir}/data"\n'
                    f'[listen]\nsmtp = ["127.0.0.1:{self.smtp}"]\nsubmission = []\nsubmissions = []\n'
                    f'imap = ["127.0.0.1:{self.imap}"]\nimaps = ["127.0.0.1:{self.imaps}"]\nhttp = []\nmanagesieve = []\n'
                    f'[tls]\nsource = "self-signed"\n'
                    f'[inbound]\nverify = {"true" if verify else "false"}\n[imap]\nallow_plaintext_auth = true\n'
                    f'[limits]\nmax_connections = 5000\nmax_connections_per_ip = 5000\n'
                    f'max_messages_per_connection = 100000\n{dns}{extra}')
        for u in users:
            self.cli("user", "add", f"{u}@example.test", "--password-stdin", "--allow-short-password",
                     input=(PASSWORD + "\n").encode())
        self.proc = None
        self.log = None

    def maildir(self, user="user"):
        return os.path.join(self.dir, "data", "mail", "example.test", user)

    def cli(self, *args, input=None):
        r = subprocess.run([postern_bin(), "--config", self.cfg, *args], input=input, capture_output=True)
        if r.returncode:
            raise RuntimeError(f"postern {' '.join(args)}: {r.stderr.decode(errors='replace')}")

    def start(self, wrap=(), log="info"):
        # postern's own default level, one line per SMTP transaction and IMAP session event:
        # the baselines log at their defaults too (Postfix's maillog, Dovecot's log).
        self.log = open(os.path.join(self.dir, "serve.log"), "a")
        self.proc = subprocess.Popen([*wrap, postern_bin(), "--config", self.cfg, "serve"], stderr=self.log,
                                     stdout=self.log, env=dict(os.environ, POSTERN_LOG=log))
        _started(self)
        for p in (self.smtp, self.imap, self.imaps):
            wait_port(p, proc=self.proc)

    def pid(self):
        """The server's pid (under a wrapper such as strace, the wrapper's child)."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
            with open(f"/proc/{self.proc.pid}/comm") as f:
                if f.read().strip() != "postern" and kids:
                    return kids[0]
        except OSError:
            pass
        return self.proc.pid

    def stop(self):
        _stopped(self)
        if self.proc:
            if self.proc.poll() is None:
                pid = self.pid()
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
                try:
                    self.proc.wait(60)
                except subprocess.TimeoutExpired:
                    self.proc.kill(); self.proc.wait()
            self.proc = None
        if self.log:
            self.log.close(); self.log = None


# ---------------------------------------------------------------- Postfix
class Postfix:
    """A private instance delivering example.test to virtual Maildirs (`user/`)."""
    def __init__(self, tmp, name="postfix", extra=""):
        self.dir = run_dir(tmp, name)
        etc, q, data, mail = (os.path.join(self.dir, x) for x in ("etc", "queue", "data", "mail"))
        for d in (etc, q, data, mail):
            os.makedirs(d)
        shutil.chown(data, "postfix"); shutil.chown(mail, "nobody", "nogroup")
        self.port = free_port()
        self.maildir = os.path.join(mail, "user")
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {q}
data_directory = {data}
maillog_file = {self.dir}/maillog
maillog_file_prefixes = {self.dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.postfix.test
mydestination =
smtpd_recipient_restrictions = reject_unauth_destination
virtual_mailbox_domains = example.test
virtual_mailbox_base = {mail}
virtual_mailbox_maps = inline:{{ {{user@example.test=user/}} }}
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_client_connection_count_limit = 1000
default_process_limit = 100
{extra}""")
        with open("/etc/postfix/master.cf") as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            cols = line.split()
            if cols and cols[0] == "smtp" and len(cols) > 1 and cols[1] == "inet":
                out.append(f"127.0.0.1:{self.port} inet n - n - - smtpd")
                continue
            if len(cols) >= 8 and not line.startswith((" ", "\t", "#")) and cols[4] in ("y", "-"):
                cols[4] = "n"
                line = " ".join(cols)
            out.append(line)
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")
        self.etc = etc
        self.running = False

    def start(self):
        r = subprocess.run(["postfix", "-c", self.etc, "start"], stdin=subprocess.DEVNULL, capture_output=True)
        self.running = True
        _started(self)
        if r.returncode:
            raise RuntimeError(f"postfix start: {r.stderr.decode(errors='replace')} (see {self.dir}/maillog)")
        wait_port(self.port)

    def stop(self):
        _stopped(self)
        if self.running:
            subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)
            pidf = os.path.join(self.dir, "queue", "pid", "master.pid")
            try:
                with open(pidf) as f:
                    wait_gone(int(f.read().strip()))
            except (OSError, ValueError):
                pass
            self.running = False


# ---------------------------------------------------------------- Dovecot
def write_dovecot_conf(d, home, imap_port, imaps_port, tls):
    """`d`/dovecot.conf for a private Dovecot on loopback: passwords in `d`/users (PLAIN),
    mail in `home`/<user>/Maildir owned by nobody, TLS from `d`/cert.pem and key.pem when
    `tls`; limits high enough for the 500-session benchmarks. Port 0 turns a listener off."""
    ssl = f"ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem" if tls else "ssl = no"
    with open(os.path.join(d, "dovecot.conf"), "w") as f:
        f.write(f"""protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
log_path = {d}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:~/Maildir
first_valid_uid = 0
default_login_user = nobody
default_internal_user = nobody
default_process_limit = 2000
default_client_limit = 5000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={home}/%n
}}
protocol imap {{
  mail_max_userip_connections = 5000
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
""")


class Dovecot:
    """Dovecot 2.3 in its default (high-security) process model: one imap-login process per
    TLS connection, one imap process per session; passwords in the cheap PLAIN scheme."""
    def __init__(self, tmp, name="dovecot", users=("user",)):
        self.dir = run_dir(tmp, name)
        os.makedirs(os.path.join(self.dir, "run"))
        self.port, self.imaps = free_port(), free_port()
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        with open(os.path.join(self.dir, "users"), "w") as f:
            for u in users:
                f.write(f"{u}@example.test:{{PLAIN}}{PASSWORD}\n")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-keyout", f"{self.dir}/key.pem", "-out", f"{self.dir}/cert.pem"], check=True, capture_output=True)
        # Dovecot refuses uid 0 for mail access: the mail belongs to nobody.
        write_dovecot_conf(self.dir, self.home, self.port, self.imaps, tls=True)
        self.running = False

    def maildir(self, user="user"):
        return os.path.join(self.home, user, "Maildir")

    def start(self):
        subprocess.run(["chown", "-R", "nobody:nogroup", self.home], check=True)
        # The daemon keeps the descriptors it was given: none of ours.
        with open(f"{self.dir}/start.err", "w") as err:
            r = subprocess.run(["dovecot", "-c", f"{self.dir}/dovecot.conf"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err)
        self.running = True
        _started(self)
        if r.returncode:
            with open(f"{self.dir}/start.err") as f:
                raise RuntimeError(f"dovecot: {f.read()} (see {self.dir}/dovecot.log)")
        wait_port(self.port); wait_port(self.imaps)
        end = time.time() + 20
        while self.pid() is None and time.time() < end:
            time.sleep(0.05)

    def pid(self):
        """The master's pid: from its pid file, else by its command line."""
        try:
            with open(f"{self.dir}/run/master.pid") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            pass
        conf = f"{self.dir}/dovecot.conf".encode()
        for d in os.listdir("/proc"):
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
                if args and args[0].endswith(b"dovecot") and conf in args:
                    return int(d)
            except (OSError, ValueError):
                pass
        return None

    def log_count(self, needle):
        try:
            with open(f"{self.dir}/dovecot.log", errors="replace") as f:
                return sum(1 for line in f if needle in line)
        except OSError:
            return 0

    def stop(self):
        _stopped(self)
        if self.running:
            pid = self.pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
                wait_gone(pid)
            self.running = False


# ---------------------------------------------------------------- remote MX and DNS
class Sink:
    """Postfix's smtp-sink as the remote MX, dumping one file per message."""
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "sink-%d" % free_port())
        os.makedirs(self.dir); os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", self.dir + "/msg.", f"127.0.0.1:{self.port}", "256"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _started(self)
        wait_port(self.port, proc=self.proc)

    def count(self):
        return len(os.listdir(self.dir))

    def stop(self):
        _stopped(self)
        kill_proc(self.proc)


class Dnsmasq:
    """dnsmasq answering only for .test and in-addr.arpa, from `records` (dnsmasq lines)."""
    def __init__(self, tmp, records):
        d = os.path.join(tmp, "dns-%d" % free_port()); os.makedirs(d)
        self.port = free_port()
        conf = os.path.join(d, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write(f"port={self.port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n"
                    f"local=/test/\nlocal=/in-addr.arpa/\npid-file=\nuser=root\n{records}\n")
        self.proc = subprocess.Popen(["dnsmasq", "-k", "-C", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _started(self)
        wait_port(self.port, proc=self.proc)

    def stop(self):
        _stopped(self)
        kill_proc(self.proc)


def txt_record(name, value):
    """A dnsmasq TXT line, split into strings of at most 200 bytes (RFC 7208 §3.3, RFC 6376
    §3.6.2.2: the strings of one record are concatenated)."""
    parts = ",".join(f'"{value[i:i + 200]}"' for i in range(0, len(value), 200))
    return f"txt-record={name},{parts}\n"
