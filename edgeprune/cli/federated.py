"""`edgeprune federated`: federated learning with pruning on Flower (edgeprune.federated)."""
from __future__ import annotations

import json
from pathlib import Path

from edgeprune.cli.common import (
    COUNT,
    EPOCHS,
    KEEP,
    NONNEG,
    POSITIVE,
    RATIO,
    SEED,
    add_force,
    number,
)
from edgeprune.errors import ConfigError


def cmd_federated(a) -> int:
    try:
        import flwr  # noqa: F401
    except ImportError as exc:
        raise ConfigError("federated learning needs Flower: pip install 'flwr==1.41.0' "
                          "(or pip install -e '.[federated]')") from exc
    if a.role == "certs":
        from edgeprune.federated.tls import make_credentials
        if a.out is None:
            raise ConfigError("certs needs --out DIR (a new folder for the certificates and keys)")
        files = make_credentials(a.out, tuple(a.host), a.devices, force=a.force)
        print(json.dumps({"out": str(a.out), **files}) if a.json else
              f"wrote to {a.out}: ca.crt (give it to every device and to flwr), server.pem + server.key (the "
              f"SuperLink's), device1..{a.devices}.key (one per device, keep it there) and .pub (register it: "
              f"flwr supernode register {a.out}/device1.pub edgeprune); valid for {', '.join(a.host)}")
        return 0
    if a.role == "app":
        from edgeprune.federated.deploy import CONNECTION, write_app
        if a.out is None:
            raise ConfigError("app needs --out DIR (a new folder for the Flower App)")
        config = {"method": a.method[0], "rounds": a.rounds, "min-devices": a.min_devices,
                  "local-epochs": a.local_epochs, "lr": a.lr, "prune-ratio": a.prune_ratio, "seed": a.seed,
                  "aggregation": a.aggregate, "count-cap": a.count_cap,
                  "checkpoint": str(Path(a.checkpoint).resolve()) if a.checkpoint else ""}
        out = write_app(a.out, a.superlink, force=a.force, root_certificates=a.root_certificates,
                        insecure=a.insecure, **config)
        tls = ("--insecure" if a.insecure else
               f"--root-certificates {a.root_certificates} --auth-supernode-private-key DEVICE.key")
        print(f"Flower App written to {out}; Flower's settings for it are in {out}/flower (connection "
              f"'{CONNECTION}' to {a.superlink}). With the SuperLink running, per device:\n"
              + ("" if a.insecure else f"    FLWR_HOME={out}/flower flwr supernode register DEVICE.pub {CONNECTION}\n")
              + f"    flower-supernode {tls} --superlink {a.superlink} --node-config user=N\nthen:\n"
              f"    FLWR_HOME={out}/flower flwr run {out} {CONNECTION} --stream")
        return 0
    if a.role == "serve":
        from edgeprune.federated.deploy import serve
        certs = (a.ssl_ca_certfile, a.ssl_certfile, a.ssl_keyfile)
        if any(certs) and not all(certs):
            raise ConfigError("TLS needs all three: --ssl-ca-certfile, --ssl-certfile and --ssl-keyfile")
        res = serve(a.address, a.method[0], a.rounds, a.min_devices, a.local_epochs, a.lr, a.prune_ratio,
                    checkpoint_dir=a.checkpoint, out=a.history, seed=a.seed,
                    certificates=certs if all(certs) else None, insecure=a.insecure,
                    aggregation=a.aggregate, count_cap=a.count_cap)
        print(json.dumps(res) if a.json else f"{len(res['rounds'])} rounds; accuracy "
              f"{res['rounds'][-1]['accuracy']:.4f}; {res['total_bytes'] / 2 ** 20:.2f} MiB in all")
        return 0
    if a.role == "device":
        from edgeprune.federated.deploy import device
        if a.user is None:
            raise ConfigError("device needs --user N (a HAPT user, 1-21)")
        device(a.address, a.user, fault=a.fault, seed=a.seed, root_certificates=a.root_certificates,
               insecure=a.insecure)
        return 0
    from edgeprune.federated.experiment import FedConfig, compare
    cfg = FedConfig(rounds=a.rounds, devices_per_user=a.devices_per_user, local_epochs=a.local_epochs, lr=a.lr,
                    fraction_fit=a.fraction_fit, prune_ratio=a.prune_ratio, seed=a.seed, mia_holdout=a.mia_holdout,
                    perturb=a.perturb, dataset=a.data, devices=a.devices, partition=a.partition, alpha=a.alpha,
                    limit=a.limit, npz=a.npz, data_root=a.root, download=a.download, arch=a.model,
                    enforce_profiles=a.enforce_profiles, aggregation=a.aggregate, count_cap=a.count_cap,
                    attack=a.attack, attackers=a.attackers)
    res = compare(tuple(a.method), cfg, a.out, merge=a.merge, force=a.force)
    if a.json:
        print(json.dumps(res))
    else:
        base = res.get("fedavg")
        for m, r in res.items():
            last = r["rounds"][-1]
            ratio = f", {base['total_bytes'] / r['total_bytes']:.1f}x less traffic than fedavg" if base and m != "fedavg" else ""
            print(f"{m:8} accuracy {100 * last['accuracy']:.2f} % after {len(r['rounds'])} rounds; "
                  f"{r['total_bytes'] / 2 ** 20:.1f} MiB in all{ratio}; {len(r['rejected'])} updates rejected")
        if a.out:
            print(f"plot and figures in {a.out}/federated.svg, {a.out}/federated.json")
    return 0


def robust_rules() -> tuple[str, ...]:
    try:
        from edgeprune.federated.robust import RULES
    except ImportError:  # Flower not installed: the federated command says so when run
        return ("mean",)
    return RULES


def attack_names() -> tuple[str, ...]:
    try:
        from edgeprune.federated.client import ATTACKS
    except ImportError:
        return ()
    return ATTACKS


def add(sub) -> None:
    s = sub.add_parser("federated", help="federated learning with pruning on Flower (HAPT users as devices)")
    s.add_argument("role", choices=["simulate", "certs", "app", "serve", "device"],
                   help="simulate on this machine; make TLS certificates and device keys (certs); write the Flower "
                        "App for a SuperLink and SuperNodes (app); or run a real server / device process over gRPC")
    s.add_argument("--method", nargs="+", default=["fedavg", "pqsu"], choices=["fedavg", "pqsu", "memdefense", "personal", "gwep", "prunefl"],
                   help="strategies (simulate runs each, side by side; serve uses the first)")
    s.add_argument("--rounds", type=COUNT, default=20)
    s.add_argument("--local-epochs", type=EPOCHS, default=1)
    s.add_argument("--lr", type=POSITIVE, default=0.05)
    s.add_argument("--prune-ratio", type=RATIO, default=0.5, help="pqsu: fraction of channels pruned once, up front")
    s.add_argument("--devices-per-user", type=number(int, 1, 100), default=1, help="simulate: split each user into N devices")
    s.add_argument("--fraction-fit", type=KEEP, default=1.0, help="simulate: devices sampled per round")
    s.add_argument("--out", type=Path, help="simulate: folder for federated.json and federated.svg; app: folder for the Flower App")
    s.add_argument("--mia-holdout", type=number(float, 0, 0.9), default=0.0,
                   help="simulate: fraction of each user's windows kept from training as non-members for the "
                        "membership-inference attack (default: held-out users are the non-members)")
    s.add_argument("--merge", action="store_true",
                   help="simulate: keep the other methods already in --out/federated.json beside these runs")
    s.add_argument("--enforce-profiles", action="store_true",
                   help="simulate: a device takes part only if the model's int8 cost fits its profile (cycled: "
                        "rp2040, stm32l432, nrf52840, esp32; 200 ms latency budget)")
    s.add_argument("--perturb", type=number(float, 0, 1, low_open=True, high_open=True), default=0.3,
                   help="memdefense: largest fraction of the weights whose local update may be pruned")
    s.add_argument("--data", default="hapt", choices=["hapt", "mnist", "fashion_mnist", "cifar10"],
                   help="simulate: HAPT users as devices, or an image dataset partitioned over --devices")
    s.add_argument("--devices", type=number(int, 1, 10_000), default=10,
                   help="simulate, image data: number of devices; certs: device key pairs to make")
    s.add_argument("--partition", default="iid", choices=["iid", "dirichlet"], help="simulate, image data")
    s.add_argument("--alpha", type=POSITIVE, default=0.5, help="dirichlet partition: concentration (smaller = more skew)")
    s.add_argument("--limit", type=COUNT, help="simulate, image data: use this many training (and test) images")
    s.add_argument("--npz", help="local .npz copy of the image dataset (instead of torchvision)")
    s.add_argument("--root", default="~/.cache/edgeprune", help="torchvision dataset folder")
    s.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    s.add_argument("--model", help="architecture from the zoo (default: har_cnn, lenet5 or resnet8 by dataset)")
    s.add_argument("--superlink", default="127.0.0.1:8000", help="app: the SuperLink's address (its --port)")
    s.add_argument("--address", default="127.0.0.1:8080", help="serve / device: gRPC address (older entry points)")
    s.add_argument("--min-devices", type=COUNT, default=2)
    s.add_argument("--checkpoint", help="serve, app: folder for the per-round checkpoint (resumes from it)")
    s.add_argument("--history", help="serve: write the history JSON here")
    s.add_argument("--user", type=number(int, 1, 30), help="device: the HAPT user whose data this device holds")
    s.add_argument("--fault", choices=["drop", "slow", "nan", "shape"], help="device: misbehave (for tests)")
    s.add_argument("--root-certificates", help="app, device: the CA certificate the server's TLS certificate is "
                                               "signed with (from `edgeprune federated certs`)")
    s.add_argument("--ssl-ca-certfile", help="serve: CA certificate (TLS)")
    s.add_argument("--ssl-certfile", help="serve: the server's TLS certificate")
    s.add_argument("--ssl-keyfile", help="serve: the server's TLS private key")
    s.add_argument("--insecure", action="store_true",
                   help="app, serve, device: no TLS (plain text): only for a test on one machine")
    s.add_argument("--host", nargs="+", default=["127.0.0.1", "localhost"],
                   help="certs: host names / addresses the devices dial the server by")
    s.add_argument("--aggregate", default="mean", choices=list(robust_rules()),
                   help="how the server combines the updates: the sample-weighted mean (FedAvg), or a rule one "
                        "bad device cannot steer (median, trimmed, krum, multikrum, bulyan, clip)")
    s.add_argument("--count-cap", type=NONNEG, default=4.0,
                   help="cap each device's reported sample count at this many times the round's median (0: off)")
    s.add_argument("--attack", choices=list(attack_names()), help="simulate: what the --attackers devices do")
    s.add_argument("--attackers", type=number(int, 0, 10_000), default=0,
                   help="simulate: how many devices (drawn with --seed) run --attack")
    s.add_argument("--seed", type=SEED, default=0)
    add_force(s)
    s.set_defaults(fn=cmd_federated)
