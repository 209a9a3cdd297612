#!/usr/bin/env python3
"""A scripted HL7 v2 receiver over MLLP, independent of medgw, for tests of MLLP delivery.

It stands in for an interface engine: it listens on 127.0.0.1, reads MLLP-framed messages,
reads each with python-hl7 (not medgw's parser) and answers by a script, one entry per message
received, the last entry repeating:

  AA                 accept (original mode)
  AE[:text]          application error, with an ERR segment carrying the text
  AR[:text]          application reject, with an ERR segment carrying the text
  CA+AA              enhanced mode: commit accept, then an application accept that asks for a
                     commit ACK back (MSH-15 AL)
  CA+AE[:text]       enhanced mode: commit accept, then an application error (likewise AR)
  CA                 enhanced mode: commit accept only, no application ACK
  silence            no answer; the connection stays open
  close              close the connection as soon as the start of a message arrives, before
                     its end block is read ("close mid-message")
  partial            send the first half of an AA, then close

Every message read is logged to --log as one line:
"<MSH-10>\t<MSH-9>\t<answer>\t<connection>\t<outstanding>", outstanding being the messages
read on that connection and not yet answered, this one included (an ACK sent back by the sender
is logged too, with its MSA-1 as answer), so that a test can check what was delivered, what was
resent and how many the sender had in flight. With --ack-delay-ms N every answer goes out N ms
after its message was read, while further messages are read (a slow engine that pipelines). With --dump, every message accepted (answered
AA or CA+AA) is appended to that file as its ER7 text with segments on lines and a blank line
after it, for a test to compare the content. The port is printed on stdout as "PORT <n>".

With --tls-cert and --tls-key it speaks TLS (Python's ssl module); with --tls-ca as well it
requires a client certificate signed by that CA.

Usage: mllp_receiver.py --script AA,AE:busy,AR:Unknown patient --log FILE [--port N] [--dump FILE]
       [--ack-delay-ms N] [--tls-cert PEM --tls-key PEM [--tls-ca PEM]]
"""

import argparse
import asyncio
import ssl
import sys

import hl7

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"


def frame(text):
    return SB + text.encode("utf-8") + EB + CR


def build_ack(message, code, text=None, accept_ack=None):
    ack = message.create_ack(code, message_id="ACK" + str(message.segment("MSH")[10]))
    if accept_ack:
        ack.segment("MSH").assign_field(accept_ack, 15)
    out = str(ack)
    if text:
        # v2.5+ ERR: ERR-3 error code (table 0357), ERR-4 severity, ERR-8 user message.
        code_0357 = "204^Unknown key identifier^HL70357" if code == "AR" else "207^Application internal error^HL70357"
        out += "ERR||PID^1^3|%s|E||||%s\r" % (code_0357, text)
    return out


class Receiver:
    def __init__(self, script, log_path, dump_path=None, ack_delay=0.0):
        self.script = script
        self.log_path = log_path
        self.dump_path = dump_path
        self.ack_delay = ack_delay
        self.received = 0
        self.connections = 0
        # Per connection: messages read and not yet answered.
        self.outstanding = {}

    def next_answer(self):
        answer = self.script[min(self.received, len(self.script) - 1)]
        self.received += 1
        return answer

    def log(self, control_id, message_type, answer, connection):
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write("%s\t%s\t%s\t%d\t%d\n" % (control_id, message_type, answer, connection,
                                               self.outstanding.get(connection, 0)))

    async def serve(self, reader, writer):
        self.connections += 1
        connection = self.connections
        self.outstanding[connection] = 0
        buf = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buf += chunk
                # "close": decided when a message starts, so the end block may never be read.
                start = buf.find(SB)
                if start >= 0 and self.peek() == "close":
                    self.next_answer()
                    self.log(self.control_id_of(buf[start + 1:]), "?", "close", connection)
                    return
                while True:
                    start = buf.find(SB)
                    end = buf.find(EB + CR, start + 1)
                    if start < 0 or end < 0:
                        break
                    body, buf = buf[start + 1:end], buf[end + 2:]
                    if self.ack_delay > 0:
                        # Answered later, in its own task: reading goes on meanwhile.
                        self.outstanding[connection] += 1
                        asyncio.get_running_loop().create_task(self.answer(body, writer, connection, True))
                        continue
                    self.outstanding[connection] += 1
                    await self.answer(body, writer, connection)
                    if writer.is_closing():
                        return
        except ConnectionError:
            return
        finally:
            writer.close()

    def peek(self):
        return self.script[min(self.received, len(self.script) - 1)]

    @staticmethod
    def control_id_of(partial):
        try:
            return partial.decode("utf-8", "replace").split("\r")[0].split("|")[9]
        except IndexError:
            return "?"

    async def answer(self, body, writer, connection, delayed=False):
        try:
            await self.answer_now(body, writer, connection, delayed)
        except ConnectionError:
            pass
        finally:
            self.outstanding[connection] -= 1

    async def answer_now(self, body, writer, connection, delayed):
        message = hl7.parse(body.decode("utf-8"))
        msh = message.segment("MSH")
        control_id = str(msh[10])
        message_type = str(msh[9])
        if message_type.startswith("ACK"):
            # The sender's commit ACK for our application ACK: logged, never answered.
            self.log(control_id, message_type, str(message.segment("MSA")[1]), connection)
            return
        answer = self.next_answer()
        self.log(control_id, message_type, answer, connection)
        code, _, text = answer.partition(":")
        if self.dump_path and code in ("AA", "CA+AA"):
            with open(self.dump_path, "a", encoding="utf-8") as f:
                f.write(body.decode("utf-8").replace("\r", "\n").rstrip("\n") + "\n\n")
        if delayed:
            await asyncio.sleep(self.ack_delay)
            if writer.is_closing():
                return
        if code in ("AA", "AE", "AR"):
            writer.write(frame(build_ack(message, code, text or None)))
        elif code == "CA":
            writer.write(frame(build_ack(message, "CA")))
        elif code.startswith("CA+"):
            app_code = code[3:]
            if app_code not in ("AA", "AE", "AR"):
                raise SystemExit("unknown script entry %r" % answer)
            writer.write(frame(build_ack(message, "CA")))
            await writer.drain()
            await asyncio.sleep(0.05)
            # The application ACK, on a message of its own that asks for a commit ACK back.
            app = message.create_ack(app_code, message_id="APP" + control_id)
            app.segment("MSH").assign_field("AL", 15)
            out = str(app)
            if text:
                out += "ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||%s\r" % text
            writer.write(frame(out))
        elif code == "partial":
            ack = frame(build_ack(message, "AA"))
            writer.write(ack[: len(ack) // 2])
            await writer.drain()
            writer.close()
            return
        elif code == "silence":
            return
        else:
            raise SystemExit("unknown script entry %r" % answer)
        await writer.drain()


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--script", required=True, help="comma-separated answers, the last repeating")
    p.add_argument("--log", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dump")
    p.add_argument("--ack-delay-ms", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tls-ca")
    args = p.parse_args()
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_ca:
            context.load_verify_locations(args.tls_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    receiver = Receiver([s.strip() for s in args.script.split(",") if s.strip()], args.log, args.dump,
                        args.ack_delay_ms / 1000.0)
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", args.port, ssl=context)
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
