//! COMPRESS=DEFLATE with data pipelined behind the command (RFC 4978 §3: compression starts
//! right after the CRLF of the command): the client writes the command and deflated commands
//! in one `send`, as mobile clients do, over a raw TLS socket.
mod common;

use common::*;

const USER: &str = "dora@example.test";
const PASS: &str = "doras secret pw";

#[test]
fn deflated_bytes_in_the_same_write_as_compress_are_inflated() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    let script = format!(
        r#"import socket, ssl, zlib
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port}), timeout=20))
buf = b''
def line():
    global buf
    while b'\r\n' not in buf:
        b = s.recv(65536)
        assert b, buf
        buf += b
    l, buf = buf.split(b'\r\n', 1)
    return l
assert line().startswith(b'* OK')
s.sendall(b'a LOGIN {USER} "{PASS}"\r\n')
while not (l := line()).startswith(b'a '):
    pass
assert l.startswith(b'a OK'), l
co = zlib.compressobj(6, zlib.DEFLATED, -15)
de = zlib.decompressobj(-15)
z = co.compress(b'b NOOP\r\nc SELECT INBOX\r\n') + co.flush(zlib.Z_SYNC_FLUSH)
s.sendall(b'z COMPRESS DEFLATE\r\n' + z)
l = line()
assert l == b'z OK DEFLATE active', l
# Everything after that line is deflated, even what came in the same read.
got = de.decompress(buf)
while b'c OK' not in got and b'c NO' not in got and b'BAD' not in got:
    b = s.recv(65536)
    assert b, got
    got += de.decompress(b)
assert b'b OK' in got and b'c OK' in got, got
assert b'BAD' not in got, got
s.sendall(co.compress(b'd LOGOUT\r\n') + co.flush(zlib.Z_SYNC_FLUSH))
got = b''
while b'd OK' not in got:
    b = s.recv(65536)
    assert b, got
    got += de.decompress(b)
assert b'* BYE' in got, got
print('ALL OK')
"#,
        port = p.ports.imaps,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
}
