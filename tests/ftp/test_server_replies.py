"""The FTP server's replies to settings, wrong-sequence and refused commands, through ftplib."""

from __future__ import annotations

import ftplib
import io
import socket
import ssl

from tests.ftp.helpers import ALL, ServerTestCase


def raw(f: ftplib.FTP, command: str) -> str:
    """The reply to *command*, error replies included."""
    try:
        return f.sendcmd(command)
    except ftplib.Error as e:
        return str(e)


class ReplyTests(ServerTestCase):
    async def test_settings_commands(self) -> None:
        await self.start()

        def run() -> dict[str, str]:
            f = self.ftp()
            commands = [
                "TYPE A", "TYPE L 8", "TYPE E", "STRU F", "STRU R", "MODE S", "MODE B",
                "ALLO 10", "REST abc", "REST 5", "SYST", "NOOP", "OPTS UTF8 ON",
                "OPTS UTF8 OFF", "OPTS MLST type;size;bogus;", "OPTS FROB", "HELP RETR",
                "HELP FROB", "SITE HELP", "SITE FROB", "SITE CHMOD xyz a", "SITE CHMOD 99999 a",
                "SITE CHMOD 644", "ACCT x", "PBSZ 0", "PROT P", "CCC", "ABOR", "AUTH SSL",
            ]  # fmt: skip
            replies = {c: raw(f, c) for c in commands}
            f.quit()
            return replies

        r = await self.in_thread(run)
        expected = {
            "TYPE A": "200", "TYPE L 8": "200", "TYPE E": "504", "STRU F": "200",
            "STRU R": "504", "MODE S": "200", "MODE B": "504", "ALLO 10": "202",
            "REST abc": "501", "REST 5": "350", "SYST": "215", "NOOP": "200",
            "OPTS UTF8 ON": "200", "OPTS UTF8 OFF": "504", "OPTS MLST type;size;bogus;": "200",
            "OPTS FROB": "501", "HELP RETR": "214", "HELP FROB": "501", "SITE HELP": "214",
            "SITE FROB": "502", "SITE CHMOD xyz a": "501", "SITE CHMOD 99999 a": "501",
            "SITE CHMOD 644": "501", "ACCT x": "202",
        }  # fmt: skip
        self.assertEqual({c: r[c][:3] for c in expected}, expected, r)
        self.assertIn("MLST OPTS type;size;", r["OPTS MLST type;size;bogus;"])
        self.assertIn("UNIX Type: L8", r["SYST"])
        self.assertIn("restarting at 5", r["REST 5"])
        # Without TLS the security commands are refused, never accepted.
        for command in ("PBSZ 0", "PROT P", "CCC", "AUTH SSL"):
            self.assertRegex(r[command], r"^5\d\d ", command)
        self.assertTrue(r["ABOR"].startswith("2"), r["ABOR"])

    async def test_file_commands_refused(self) -> None:
        await self.start()

        def run() -> dict[str, str]:
            f = self.ftp()
            f.storbinary("STOR f.txt", io.BytesIO(b"abc"))
            f.mkd("d")
            commands = [
                "CWD nowhere", "CWD f.txt", "RNTO x", "RNFR nothing", "SIZE d", "SIZE f.txt",
                "SIZE none", "MDTM none", "MFMT 2026 f.txt", "MFMT 20260101000000",
                "MFMT 20260101000000 f.txt", "MLST f.txt", "MLST none", "RMD none",
                "DELE none", "MKD d", "SITE CHMOD 600 f.txt", "CDUP", "PWD", "STAT f.txt",
                "STAT", "PORT 1,2,3", "EPRT |9|x|1|", "PORT 10,9,9,9,200,1",
            ]  # fmt: skip
            replies = {c: raw(f, c) for c in commands}
            f.quit()
            return replies

        r = await self.in_thread(run)
        expected = {
            "CWD nowhere": "550", "CWD f.txt": "550", "RNTO x": "503", "RNFR nothing": "550",
            "SIZE d": "550", "SIZE f.txt": "213", "SIZE none": "550", "MDTM none": "550",
            "MFMT 2026 f.txt": "501", "MFMT 20260101000000": "501",
            "MFMT 20260101000000 f.txt": "213", "MLST f.txt": "250", "MLST none": "550",
            "RMD none": "550", "DELE none": "550", "MKD d": "550", "SITE CHMOD 600 f.txt": "200",
            "CDUP": "250", "PWD": "257", "STAT f.txt": "212", "STAT": "211", "PORT 1,2,3": "501",
            "EPRT |9|x|1|": "522", "PORT 10,9,9,9,200,1": "501",
        }  # fmt: skip
        self.assertEqual({c: r[c][:3] for c in expected}, expected, r)
        self.assertEqual(r["SIZE f.txt"], "213 3")
        self.assertIn("f.txt", r["STAT f.txt"])
        self.assertIn("Modify=20260101000000", r["MFMT 20260101000000 f.txt"])

    async def test_permissions_and_sequence(self) -> None:
        await self.start()

        def run() -> dict[str, str]:
            f = ftplib.FTP(timeout=10)
            f.connect(self.server.host, self.server.port)
            replies = {"PASS first": raw(f, "PASS x"), "LIST early": raw(f, "PWD")}
            f.login("reader", "pw")
            for c in ("DELE a", "MKD a", "STOR a", "SITE CHMOD 600 a", "RNFR a"):
                replies[c] = raw(f, c)
            replies["RETR no port"] = raw(f, "RETR missing")
            replies["REIN"] = raw(f, "REIN")
            replies["PWD after REIN"] = raw(f, "PWD")
            f.close()
            return replies

        r = await self.in_thread(run)
        self.assertEqual(r["PASS first"][:3], "503")
        self.assertEqual(r["LIST early"][:3], "530")
        for c in ("DELE a", "MKD a", "SITE CHMOD 600 a", "RNFR a"):
            self.assertEqual(r[c], "550 permission denied", c)
        self.assertEqual(r["STOR a"][:1], "5")
        self.assertEqual(r["REIN"][:3], "220")
        self.assertEqual(r["PWD after REIN"][:3], "530")


class PassiveReplyTests(ServerTestCase):
    async def test_epsv_all_locks_out_other_data_commands(self) -> None:
        await self.start()

        def run() -> list[str]:
            f = self.ftp()
            out = [raw(f, c) for c in ("EPSV 3", "EPSV ALL", "PASV", "PORT 127,0,0,1,200,1")]
            out.append(raw(f, "EPRT |1|127.0.0.1|51201|"))
            f.quit()
            return out

        out = await self.in_thread(run)
        self.assertEqual([x[:3] for x in out], ["522", "200", "503", "503", "503"], out)
        self.assertIn("EPSV ALL", out[2])

    async def test_ascii_listing_and_anonymous_login(self) -> None:
        await self.start(anonymous=True)

        def run() -> tuple[str, str, list[str]]:
            f = ftplib.FTP(timeout=10)
            f.connect(self.server.host, self.server.port)
            user = raw(f, "USER anonymous")
            password = raw(f, "PASS someone@example.test")
            names: list[str] = []
            f.retrlines("NLST", names.append)
            f.quit()
            return user, password, names

        user, password, names = await self.in_thread(run)
        self.assertEqual(user[:3], "331")
        self.assertIn("anonymous", user)
        self.assertEqual(password[:3], "230")
        self.assertEqual(names, [])


class ControlLineTests(ServerTestCase):
    async def test_unknown_and_malformed_commands(self) -> None:
        await self.start()

        def run() -> list[str]:
            f = ftplib.FTP(timeout=10)
            f.connect(self.server.host, self.server.port)
            out = [raw(f, c) for c in ("USER anonymous", "FROB", "PWD", "RETR")]
            f.login("alice", "secret")
            out += [raw(f, c) for c in ("FROB x", "NOOP extra", "DELE", "RNTO")]
            f.quit()
            return out

        out = await self.in_thread(run)
        codes = [x[:3] for x in out]
        self.assertEqual(codes[0], "530")
        self.assertIn("anonymous", out[0])
        self.assertIn(codes[1], ("500", "502"))
        self.assertEqual(codes[2:4], ["530", "530"])
        self.assertIn(codes[4], ("500", "502"))
        self.assertRegex(out[6], r"^50[1-4] ")
        self.assertRegex(out[7], r"^50[13] ")

    async def test_too_many_errors_close_the_session(self) -> None:
        await self.start()

        def run() -> list[str]:
            f = self.ftp()
            out = []
            for _ in range(60):
                reply = raw(f, "FROB")
                out.append(reply)
                if reply.startswith("421"):
                    break
            f.close()
            return out

        out = await self.in_thread(run)
        self.assertTrue(out[-1].startswith("421 too many errors"), out[-3:])
        self.assertGreater(len(out), 1)


class TLSReplyTests(ServerTestCase):
    async def test_protection_levels(self) -> None:
        await self.start(tls=True)

        def run() -> dict[str, str]:
            f = ftplib.FTP_TLS(timeout=10)
            f.context.check_hostname = False
            f.context.verify_mode = ssl.CERT_NONE
            f.connect(self.server.host, self.server.port)
            r = {"AUTH X": raw(f, "AUTH X")}
            f.auth()
            f.login("alice", "secret")
            for c in ("PROT P", "PBSZ 0", "PROT S", "PROT X", "PROT C", "PROT P", "CCC"):
                r.setdefault(c, raw(f, c))
            r["second PROT P"] = raw(f, "PROT P")
            f.quit()
            return r

        r = await self.in_thread(run)
        self.assertEqual(r["AUTH X"][:3], "504")
        self.assertEqual(r["PROT P"][:3], "503")
        self.assertEqual(r["PBSZ 0"], "200 PBSZ=0")
        self.assertEqual(r["PROT S"][:3], "536")
        self.assertEqual(r["PROT X"][:3], "504")
        self.assertEqual(r["PROT C"], "200 protection level set to C")
        self.assertEqual(r["second PROT P"], "200 protection level set to P")
        self.assertEqual(r["CCC"][:3], "533")


class DataSetupReplyTests(ServerTestCase):
    async def test_transfer_needs_a_data_port(self) -> None:
        await self.start()

        def run() -> list[str]:
            f = self.ftp()
            f.storbinary("STOR f.txt", io.BytesIO(b"abc"))
            commands = (
                "RETR f.txt",
                "EPSV",
                "PASV",
                "EPSV 1",
                "RETR none",
                "PORT 127,0,0,1,0,80",
                "PORT 127,0,0,1,200,1",
                "EPRT |1|127.0.0.1|51202|",
            )
            out = [raw(f, c) for c in commands]  # fmt: skip
            f.quit()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], "425 use PORT, EPRT, PASV or EPSV first")
        self.assertEqual([x[:3] for x in out[1:5]], ["229", "227", "229", "550"], out)
        self.assertEqual(out[5], "501 data port below 1024 refused")
        self.assertEqual(out[6:], ["200 command okay"] * 2)


class RawControlTests(ServerTestCase):
    async def test_bare_cr_and_telnet_synch(self) -> None:
        await self.start()

        def run() -> list[bytes]:
            with socket.create_connection((self.server.host, self.server.port), timeout=10) as s:
                reader = s.makefile("rb")
                replies = [reader.readline()]
                for line in (b"NOOP\rX\r\n", b"\xff\xf4\xf2ABOR\r\n", b"QUIT\r\n"):
                    s.sendall(line)
                    replies.append(reader.readline())
                return replies

        replies = await self.in_thread(run)
        self.assertEqual(replies[0][:4], b"220 ")
        self.assertEqual(replies[1], b"500 bad line ending\r\n")
        self.assertEqual(replies[2][:3], b"530")  # ABOR was read as ABOR, not as junk
        self.assertEqual(replies[3][:3], b"221")


class NoListPermissionTests(ServerTestCase):
    users = {"alice": ("secret", ALL), "writer": ("pw", "w")}

    async def test_listing_and_reading_refused(self) -> None:
        await self.start()

        def run() -> tuple[dict[str, str], list[str]]:
            f = self.ftp()
            f.storbinary("STOR f.txt", io.BytesIO(b"abc"))
            lines: list[str] = []
            f.dir("-la", lines.append)
            mlsd_file = raw(f, "MLSD f.txt")
            f.quit()
            f = self.ftp("writer", "pw")
            commands = ("STAT f.txt", "CWD /", "SIZE f.txt", "MLST f.txt", "LIST", "RETR f.txt")
            r = {c: raw(f, c) for c in commands}
            r["MLSD f.txt"] = mlsd_file
            f.quit()
            return r, lines

        r, lines = await self.in_thread(run)
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].endswith(" f.txt"), lines)
        self.assertEqual(r.pop("MLSD f.txt"), "501 not a directory")
        self.assertEqual(set(r.values()), {"550 permission denied"}, r)
