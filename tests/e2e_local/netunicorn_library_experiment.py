"""netunicorn-library tasks, unmodified, in one netunicorn pipeline: the conformance suite's
experiment (read by tests/e2e_local/test_netunicorn_library.py). The captures are declared as
artifacts with unicorn_ansible.add_artifact, the tasks themselves unchanged.

Settings come from the environment: CONFORMANCE_DIR (where captures go), HTTP_PORT (the test's
HTTP server), DNS_PORT (the test's DNS responder), TARGET (the address probed)."""

import datetime
import os

from netunicorn.base import Experiment, Pipeline
from netunicorn.library.tasks.basic import DummyTask, ShellCommand, SleepTask, SleepUntilTask
from netunicorn.library.tasks.capture import tcpdump, tshark
from netunicorn.library.tasks.data_transfer.fetch_data import FetchData
from netunicorn.library.tasks.data_transfer.send_data import SendData
from netunicorn.library.tasks.measurements.iperf3 import Iperf3Client, Iperf3ServerStart, Iperf3ServerStop
from netunicorn.library.tasks.measurements.ping import Ping
from netunicorn.library.tasks.preprocessing.scapy import Get5Tuples, GetDNSQueries, GetHTTPHostHeaders
from netunicorn.library.tasks.preprocessing.tshark import TsharkCommand
from netunicorn.library.tasks.utils.network import PortKnock
from netunicorn.library.tasks.utils.sleep import RandomSleepTask

from unicorn_ansible import add_artifact

folder = os.environ["CONFORMANCE_DIR"]
target = os.environ.get("TARGET", "127.0.0.1")
http = f"http://{target}:{os.environ['HTTP_PORT']}/analysis"
iperf_port = os.environ.get("IPERF_PORT", "5201")
pcap, tshark_pcap = f"{folder}/tcpdump.pcap", f"{folder}/tshark.pcap"
# iperf's second of loopback traffic would fill the capture buffers and drop dig's query: filter it out
no_iperf = ["not", "port", iperf_port]

pipeline = (
    Pipeline(early_stopping=False)
    .then([DummyTask(name="dummy"), SleepTask(1, name="sleep"), RandomSleepTask(0, 1, name="random-sleep"),
           SleepUntilTask(datetime.datetime.now() - datetime.timedelta(seconds=1), name="sleep-until")])
    .then([add_artifact(tcpdump.StartCapture(pcap, ["-i", "lo", *no_iperf], name="tcpdump"), pcap),  # the captures come home
           add_artifact(tshark.StartCapture(tshark_pcap, ["-i", "lo", "-f", " ".join(no_iperf)],
                                                 name="tshark"), tshark_pcap),
           Iperf3ServerStart(["-p", iperf_port], name="iperf-server")])
    # the capture tasks return once their tools are started, not capturing yet: a loaded machine
    # missed dig's query; a tool creates its file once its interface is open
    .then(ShellCommand(["sh", "-c", f"for i in $(seq 300); do [ -e {pcap} ] && [ -e {tshark_pcap} ] && exit 0; "
                        "sleep 0.1; done; exit 1"], name="captures-ready"))
    .then([Ping(target, count=2, name="ping"),
           PortKnock(target, int(os.environ["HTTP_PORT"]), name="knock"),
           ShellCommand(["dig", f"@{target}", "-p", os.environ["DNS_PORT"], "+tries=1", "+time=2",
                         "conformance.test"], name="dig"),
           SendData([SendData.TaskDescriptor(name="sleep")], http, name="send"),
           Iperf3Client(["-c", target, "-p", iperf_port, "-t", "1", "-J"],
                        name="iperf-client")])
    .then([FetchData("send", http, name="fetch"),
           Iperf3ServerStop("iperf-server", name="iperf-stop")])
    .then(SleepTask(1, name="settle"))
    .then([tcpdump.StopNamedCapture("tcpdump", name="tcpdump-stop"),
           tshark.StopCapture("tshark", name="tshark-stop")])
    .then(SleepTask(1, name="flush"))
    .then([Get5Tuples(pcap, name="5tuples"), GetDNSQueries(pcap, name="dns-queries"),
           GetHTTPHostHeaders(pcap, name="http-hosts"),
           TsharkCommand(["tshark", "-r", tshark_pcap, "-Y", "icmp.type == 8", "-T", "fields", "-e", "ip.dst"],
                         name="tshark-read")])
)


def experiment(nodes):
    return Experiment().map(pipeline, nodes.take(1))
