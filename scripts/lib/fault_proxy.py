#!/usr/bin/env python3
"""A TCP proxy that can blackhole or delay what passes through it: scripts/nemesis's network faults.

  fault_proxy.py --control SOCKET --upstream HOST PORT...

Listens on 127.0.0.1:PORT for every PORT and forwards each connection to HOST:PORT. scripts/cluster
runs it inside the network namespace of one Sluice replica (SLUICE_CLUSTER_NETNS), where the Redis
nodes' own addresses (127.0.0.1:PORT) lead here: every byte between that replica and Redis passes
through it. A line on the control socket (a unix socket, reachable from any namespace) sets the mode
of every connection, open or new, and is answered "ok <mode>":

  pass          forward at once
  blackhole     forward nothing, in either direction; no RST, no FIN: a partition. Bytes are held
                and delivered in order when the mode changes back, as TCP's retransmission would
                after a partition heals (a command the replica gave up on may still run then).
  delay MS      hold each chunk MS milliseconds (1-10000) before forwarding it, in order.

Stops on SIGTERM. Modes are logged to stdout with the time.
"""
import argparse
import asyncio
import signal
import sys
import time


class Mode:
    def __init__(self):
        self.name = "pass"
        self.delay = 0.0
        self.changed = asyncio.Event()

    def set(self, name, delay=0.0):
        self.name, self.delay = name, delay
        self.changed.set()
        self.changed = asyncio.Event()
        print(f"{time.time():.3f} mode {name}{f' {int(delay * 1000)}' if name == 'delay' else ''}", flush=True)


async def pump(reader, writer, mode):
    """Copies reader to writer under the mode: each chunk stamped when read, written when allowed."""
    queue = asyncio.Queue()

    async def read():
        try:
            while True:
                data = await reader.read(65536)
                await queue.put((time.monotonic(), data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((time.monotonic(), b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            stamp, data = await queue.get()
            while True:
                if mode.name == "blackhole":
                    await mode.changed.wait()
                    continue
                wait = stamp + mode.delay - time.monotonic() if mode.name == "delay" else 0
                if wait <= 0:
                    break
                changed = mode.changed
                try:
                    await asyncio.wait_for(changed.wait(), wait)
                except asyncio.TimeoutError:
                    break
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()
        try:
            writer.close()
        except Exception:
            pass


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--control", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("ports", nargs="+", type=int)
    args = parser.parse_args()
    mode = Mode()

    def handler(port):
        async def handle(client_reader, client_writer):
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(args.upstream, port)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(pump(client_reader, upstream_writer, mode), pump(upstream_reader, client_writer, mode))
        return handle

    servers = [await asyncio.start_server(handler(port), "127.0.0.1", port) for port in args.ports]

    async def control(reader, writer):
        line = (await reader.readline()).decode().split()
        if line == ["pass"] or line == ["blackhole"]:
            mode.set(line[0])
        elif len(line) == 2 and line[0] == "delay" and line[1].isdigit() and 1 <= int(line[1]) <= 10000:
            mode.set("delay", int(line[1]) / 1000)
        else:
            writer.write(b"error: pass, blackhole or delay MS (1-10000)\n")
            await writer.drain()
            writer.close()
            return
        writer.write(f"ok {mode.name}\n".encode())
        await writer.drain()
        writer.close()

    control_server = await asyncio.start_unix_server(control, args.control)
    print(f"{time.time():.3f} forwarding {args.ports} to {args.upstream}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    control_server.close()
    for server in servers:
        server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
