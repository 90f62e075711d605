"""Interop with Debian's crit (3.17, /usr/bin/crit on /usr/bin/python3).

* crit decodes what our writer produces, with the values we wrote;
* crit decodes every golden image, and agrees with our decode on every field it knows (3.17 predates
  CRIU 4.2: it lacks xsave.cet, creds.cap_amb, thread_core.cg_set, inventory plugins/run id, and reads the
  pagemap count from field 2);
* crit encodes our JSON back to the original bytes where it knows all the fields.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from criu_core.images import ImageDir, jsonconv, pagemap
from criu_core.images.messages import new

SYS_PYTHON = "/usr/bin/python3"

# Decode many files in one crit process: the same call `crit decode` makes (pycriu.images.load).
_BATCH = r"""
import json, sys
sys.path.insert(0, '/usr/lib/python3/dist-packages')
from pycriu import images
out = {}
for path in sys.argv[2:]:
    with open(path, 'rb') as f:
        out[path] = images.load(f, sys.argv[1] == 'pretty')
json.dump(out, sys.stdout)
"""


def crit_decode(crit: str, path, pretty: bool = False) -> dict:
    args = [crit, "decode", "-i", str(path)] + (["--pretty"] if pretty else [])
    res = subprocess.run(args, check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def crit_batch(paths, pretty: bool) -> dict:
    mode = "pretty" if pretty else "plain"
    res = subprocess.run(
        [SYS_PYTHON, "-c", _BATCH, mode, *map(str, paths)], check=False, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _known_only(ours, theirs):
    """Drop from ``ours`` what crit 3.17 does not know (fields absent from its output)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return {k: _known_only(v, theirs[k]) for k, v in ours.items() if k in theirs}
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [_known_only(a, b) for a, b in zip(ours, theirs, strict=True)]
    return ours


@pytest.mark.parametrize("pretty", [False, True], ids=["plain", "pretty"])
def test_crit_agrees_on_golden_images(crit, golden_images, pretty):
    theirs_all = crit_batch(golden_images, pretty)
    for path in golden_images:
        theirs = theirs_all[str(path)]
        ours = jsonconv.decode_file(path, pretty)
        if ours["magic"] == "PAGEMAP":
            for e in theirs["entries"][1:]:
                assert e["nr_pages"] == 0  # crit 3.17 reads the count from field 2, where 4.2 writes 0
                e.pop("nr_pages")
            for e in ours["entries"][1:]:
                assert e.pop("compat_nr_pages") == 0 and e["nr_pages"] > 0
                e.pop("nr_pages")
        assert _known_only(ours, theirs) == theirs, path


def test_crit_command_decodes_golden(crit, golden_dir):
    for name in ("core-31001.img", "mm-31001.img", "pagemap-31001.img", "files.img", "stats-dump"):
        d = crit_decode(crit, golden_dir / "sleep" / name, pretty=name.startswith("mm"))
        assert d["entries"], name


def test_crit_encodes_our_json(crit, golden_dir, tmp_path):
    """Our plain JSON is crit's JSON: crit encodes it back to the exact golden bytes."""
    for name in ("pstree.img", "fdinfo-2.img", "fs-31030.img", "ids-31030.img", "pipes-data.img", "sk-queues.img"):
        src = golden_dir / "ipc" / name
        js = tmp_path / (name + ".json")
        js.write_text(json.dumps(jsonconv.decode_file(src)))
        out = tmp_path / name
        res = subprocess.run(
            [crit, "encode", "-i", str(js), "-o", str(out)], check=False, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        assert out.read_bytes() == src.read_bytes(), name


# ------------------------------------------------------------------------------------------------------------
# images written by us


def _fown():
    return new("fown.fown_entry", uid=0, euid=0, signum=0, pid_type=0, pid=0)


def _core(pid: int, leader: bool):
    regs = {
        n: 0
        for n in [
            "r15",
            "r14",
            "r13",
            "r12",
            "bp",
            "bx",
            "r11",
            "r10",
            "r9",
            "r8",
            "ax",
            "cx",
            "dx",
            "si",
            "di",
            "orig_ax",
            "ip",
            "cs",
            "flags",
            "sp",
            "ss",
        ]
    }
    regs.update(fs_base=0, gs_base=0, ds=0, es=0, fs=0, gs=0)
    regs.update(ip=0x7F0000001234, ax=2**64 - 4, orig_ax=0xE6, cs=0x33, ss=0x2B, flags=0x202, sp=0x7FFD00000000)
    xsave = new("core_x86.user_x86_xsave_entry", xstate_bv=0xA2, ymmh_space=[0] * 64)
    xsave.cet.cet = 0
    xsave.cet.ssp = 0
    fpregs = new(
        "core_x86.user_x86_fpregs_entry",
        cwd=0x37F,
        swd=0,
        twd=0,
        fop=0,
        rip=0,
        rdp=0,
        mxcsr=0x1F80,
        mxcsr_mask=0x2FFFF,
        st_space=[0] * 32,
        xmm_space=[0] * 64,
        xsave=xsave,
    )
    ti = new(
        "core_x86.thread_info_x86",
        clear_tid_addr=0x7F0000004A10,
        gpregs=new("core_x86.user_x86_regs_entry", **regs),
        fpregs=fpregs,
    )
    for n in (12, 13, 14):
        ti.tls.add(
            entry_number=n,
            base_addr=0,
            limit=0,
            seg_32bit=False,
            contents_h=False,
            contents_l=False,
            read_exec_only=True,
            limit_in_pages=False,
            seg_not_present=True,
            usable=False,
        )
    creds = new(
        "creds.creds_entry",
        uid=0,
        gid=0,
        euid=0,
        egid=0,
        suid=0,
        sgid=0,
        fsuid=0,
        fsgid=0,
        cap_inh=[0, 0],
        cap_prm=[0xFEFFFFFF, 511],
        cap_eff=[0xFEFFFFFF, 511],
        cap_bnd=[0xFEFFFFFF, 511],
        secbits=0,
        cap_amb=[0, 0],
    )
    tcore = new(
        "core.thread_core_entry", futex_rla=0x7F0000004A20, futex_rla_len=24, creds=creds, comm="worker", cg_set=1
    )
    tcore.sas.ss_sp = 0
    tcore.sas.ss_size = 0
    tcore.sas.ss_flags = 2
    tcore.rseq_entry.rseq_abi_pointer = 0x7F0000004E00
    tcore.rseq_entry.rseq_abi_size = 32
    tcore.rseq_entry.signature = 0x53053053
    core = new("core.core_entry", mtype="X86_64", thread_info=ti, thread_core=tcore)
    if leader:
        tc = core.tc
        tc.task_state, tc.exit_code, tc.personality, tc.flags = 1, 0, 0, 0x400000
        tc.blk_sigset, tc.comm = 0x10000, "target"
        for t in ("real", "virt", "prof"):
            getattr(tc.timers, t).CopyFrom(new("timer.itimer_entry", isec=0, iusec=0, vsec=0, vusec=0))
        tc.timers.posix.add(
            it_id=0,
            clock_id=1,
            si_signo=14,
            it_sigev_notify=0,
            sival_ptr=0,
            overrun=0,
            isec=1,
            insec=0,
            vsec=1,
            vnsec=0,
        )
        for _ in range(16):
            tc.rlimits.rlimits.add(cur=2**64 - 1, max=2**64 - 1)
        for sig in range(1, 65):
            if sig not in (9, 19):
                tc.sigactions.add(sigaction=0, flags=0, restorer=0, mask=0)
        tc.signals_s.SetInParent()
        tc.loginuid = 2**32 - 1
        tc.oom_score_adj = 0
    return core


def test_crit_reads_our_images(crit, tmp_path):
    img = ImageDir(tmp_path)
    inv = new(
        "inventory.inventory_entry",
        img_version=2,
        fdinfo_per_id=True,
        ns_per_id=True,
        root_cg_set=1,
        lsmtype="NO_LSM",
        network_lock_method=0,
        dump_criu_run_id="00000000-1111-2222-3333-444444444444",
        allow_uprobes=True,
    )
    inv.root_ids.CopyFrom(new("core.task_kobj_ids_entry", vm_id=1, files_id=1, fs_id=1, sighand_id=1))
    inv.plugins_entry.plugins.extend(["uprobes"])
    img.write("inventory", [inv])
    img.write(
        "pstree",
        [
            new("pstree.pstree_entry", pid=500, ppid=0, pgid=500, sid=500, threads=[500, 501]),
            new("pstree.pstree_entry", pid=502, ppid=500, pgid=500, sid=500, threads=[502]),
        ],
    )
    img.write("core", [_core(500, True)], 500)
    img.write("core", [_core(501, False)], 501)
    mm = new(
        "mm.mm_entry",
        **{
            f: 0x400000
            for f in [
                "mm_start_code",
                "mm_end_code",
                "mm_start_data",
                "mm_end_data",
                "mm_start_stack",
                "mm_start_brk",
                "mm_brk",
                "mm_arg_start",
                "mm_arg_end",
                "mm_env_start",
                "mm_env_end",
            ]
        },
        exe_file_id=1,
        mm_saved_auxv=[6, 4096, 0, 0],
        dumpable=1,
    )
    mm.vmas.add(start=0x400000, end=0x402000, pgoff=0, shmid=1, prot=5, flags=2, status=0x41, fd=-1, madv=0, fdflags=0)
    mm.vmas.add(
        start=0x7FFD00000000,
        end=0x7FFD00021000,
        pgoff=0,
        shmid=0,
        prot=3,
        flags=0x122,
        status=0x201,
        fd=-1,
    )
    img.write("mm", [mm], 500)
    pid = img.next_pages_id()
    big = 70000  # more than 16 bits, so the varint spans 3 bytes
    img.write(
        "pagemap",
        [pagemap.make_head(pid), pagemap.make_entry(0x400000, 2), pagemap.make_entry(0x7FFD00000000, big, 6)],
        500,
    )
    reg = new(
        "regfile.reg_file_entry",
        id=1,
        flags=0o100000,
        pos=0,
        fown=_fown(),
        name="/usr/bin/sleep",
        size=35336,
        mode=0o100755,
        build_id=[1, 2, 3, 4, 5],
    )
    pipe = new("pipe.pipe_entry", id=2, pipe_id=4242, flags=1, fown=_fown())
    opts = new(
        "sk_opts.sk_opts_entry",
        so_sndbuf=212992,
        so_rcvbuf=212992,
        so_snd_tmo_sec=0,
        so_snd_tmo_usec=0,
        so_rcv_tmo_sec=0,
        so_rcv_tmo_usec=0,
    )
    usk = new(
        "sk_unix.unix_sk_entry",
        id=3,
        ino=777,
        type=1,
        state=1,
        flags=2,
        uflags=0,
        backlog=0,
        peer=778,
        fown=_fown(),
        opts=opts,
        name=b"",
        ns_id=2,
    )
    usk.file_perms.mode, usk.file_perms.uid, usk.file_perms.gid = 0o140755, 0, 0
    efd = new("eventfd.eventfd_file_entry", id=4, flags=2, fown=_fown(), counter=7)
    img.write(
        "files",
        [
            new("fdinfo.file_entry", type="REG", id=1, reg=reg),
            new("fdinfo.file_entry", type="PIPE", id=2, pipe=pipe),
            new("fdinfo.file_entry", type="UNIXSK", id=3, usk=usk),
            new("fdinfo.file_entry", type="EVENTFD", id=4, efd=efd),
        ],
    )

    d = crit_decode(crit, img.path_for("inventory"))
    assert d["magic"] == "INVENTORY"
    e = d["entries"][0]
    assert e["img_version"] == 2 and e["fdinfo_per_id"] is True and e["root_ids"]["files_id"] == 1

    d = crit_decode(crit, img.path_for("pstree"))
    assert [(t["pid"], t["ppid"], t["threads"]) for t in d["entries"]] == [(500, 0, [500, 501]), (502, 500, [502])]

    d = crit_decode(crit, img.path_for("core", 500), pretty=True)["entries"][0]
    assert d["mtype"] == "X86_64"
    assert d["thread_info"]["gpregs"]["ip"] == "0x7f0000001234"
    assert d["thread_info"]["gpregs"]["ax"] == "0xfffffffffffffffc"
    assert len(d["thread_info"]["fpregs"]["xsave"]["ymmh_space"]) == 64
    assert len(d["tc"]["sigactions"]) == 62 and len(d["tc"]["rlimits"]["rlimits"]) == 16
    assert d["tc"]["comm"] == "target" and d["tc"]["task_state"] == "Alive"
    assert d["tc"]["timers"]["posix"][0]["si_signo"] == 14
    assert d["thread_core"]["creds"]["cap_eff"] == [0xFEFFFFFF, 511]
    assert d["thread_core"]["rseq_entry"]["signature"] == 0x53053053
    d = crit_decode(crit, img.path_for("core", 501))["entries"][0]
    assert "tc" not in d and d["thread_core"]["comm"] == "worker"

    d = crit_decode(crit, img.path_for("mm", 500), pretty=True)["entries"][0]
    assert [v["start"] for v in d["vmas"]] == ["0x400000", "0x7ffd00000000"]
    assert d["vmas"][0]["prot"] == "PROT_READ | PROT_EXEC"
    assert d["vmas"][1]["flags"] == "MAP_PRIVATE | MAP_ANON | MAP_GROWSDOWN"
    assert d["vmas"][1]["status"] == "VMA_AREA_REGULAR | VMA_ANON_PRIVATE"
    assert d["exe_file_id"] == 1 and d["mm_saved_auxv"] == [6, 4096, 0, 0]

    # crit 3.17 only knows field 2: it sees the counts because we fill both fields
    d = crit_decode(crit, img.path_for("pagemap", 500), pretty=True)
    assert d["entries"][0] == {"pages_id": 1}
    assert [(e["vaddr"], e["nr_pages"], e["flags"]) for e in d["entries"][1:]] == [
        ("0x400000", 2, "PE_PRESENT"),
        ("0x7ffd00000000", big, "PE_LAZY | PE_PRESENT"),
    ]

    d = crit_decode(crit, img.path_for("files"))["entries"]
    assert [e["type"] for e in d] == ["REG", "PIPE", "UNIXSK", "EVENTFD"]
    assert d[0]["reg"]["name"] == "/usr/bin/sleep" and d[0]["reg"]["build_id"] == [1, 2, 3, 4, 5]
    assert d[1]["pipe"]["pipe_id"] == 4242
    assert d[2]["usk"]["peer"] == 778 and d[2]["usk"]["file_perms"]["mode"] == 0o140755
    assert d[3]["efd"]["counter"] == 7

    # and our own reader sees the 4.2-only fields crit drops
    ours = jsonconv.decode_file(img.path_for("inventory"))["entries"][0]
    assert ours["plugins_entry"] == {"plugins": ["uprobes"]} and ours["allow_uprobes"] is True
    core = img.read_one("core", 500)
    assert core.thread_info.fpregs.xsave.HasField("cet") and list(core.thread_core.creds.cap_amb) == [0, 0]
