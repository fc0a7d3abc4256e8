"""Issue 16 on the real lab, through `git push` and a real `lintas up`: verify ends on the control
plane's own signals, not on its timeout.

* a good one-VNI change is verified by stability (``ended_by: stable``) within seconds, probing
  only the pairs of the changed leaf;
* a change that cannot converge (leaf-04 filters every EVPN route it sends: a repo-local
  template override) fails long before ``verify_timeout``, with the reason (``settled``, the
  missing VTEP), and is rolled back; rollback's re-verification ends by the same rule.

The lab and `lintas up` come from :mod:`tests.deploy.test_fabric_e2e`'s fixtures (a lab of its
own for this module); its ``verify_timeout`` there is 25 s.
"""

from __future__ import annotations

import pytest

from tests.deploy import test_fabric_e2e as e2e
from tests.deploy.test_fabric_e2e import VERIFY_TIMEOUT_S, VTEP, Env, Switches, add_network, filter_evpn_of, stage

pytestmark = [pytest.mark.integration]

lab_settings, lx, sw = e2e.lab_settings, e2e.lx, e2e.sw  # the fixtures: a lab and a `lintas up` of this module


def test_a_good_change_is_verified_by_stability(lx: Env, sw: Switches) -> None:
    first = lx.drive(lx.new_run(lx.git("rev-parse", "HEAD"), timeout=60))
    assert first["state"] == "succeeded", first["error"]
    assert stage(first, "verify")["summary"]["ended_by"] == "stable"
    run = lx.push_and_drive("add VNI 10040 on leaf-01", add_network("uat-x", 40, 10040, ["leaf-01"]))
    assert run["state"] == "succeeded", run["error"]
    v = stage(run, "verify")
    assert v["summary"]["ended_by"] == "stable" and v["summary"]["probed_for"] == ["leaf-01"]
    assert v["summary"]["totals"]["failed"] == 0 and v["summary"]["totals"]["passed"] > 100
    # leaf-01 probes its 2 uplinks and 3 VTEPs; each other leaf leaf-01's VTEP, each spine its link to leaf-01
    assert v["summary"]["probes"] >= 2 + 3 + 3 + 2
    assert v["duration_s"] < VERIFY_TIMEOUT_S / 2, v["duration_s"]


def test_a_change_that_cannot_converge_fails_fast_with_its_reason_and_is_rolled_back(lx: Env, sw: Switches) -> None:
    run = lx.push_and_drive("leaf-04: filter its EVPN routes (template override)", filter_evpn_of("leaf-04"))
    assert run["state"] == "rolled_back", run["error"]
    v = stage(run, "verify")
    assert v["state"] == "failed" and v["summary"]["ended_by"] == "settled", v["summary"]
    assert "settled" in run["error"] and VTEP["leaf-04"] in run["error"] and "vni" in run["error"]
    assert v["duration_s"] < 12 < VERIFY_TIMEOUT_S, v["duration_s"]  # not the timeout
    rb = stage(run, "rollback")
    assert rb["state"] == "succeeded" and rb["summary"]["restored"] == ["leaf-04"]
    assert rb["summary"]["reverify"]["ended_by"] == "stable" and rb["summary"]["totals"]["failed"] == 0
    assert sw.pending() == [] and sw.fabric_up()
    assert sw.remote_vteps("leaf-01", 10010) == [VTEP["leaf-02"], VTEP["leaf-03"], VTEP["leaf-04"]]
    back = lx.push_and_drive("drop the template override", lambda repo: lx.git("rm", "-q", "-r", "templates/frr"))
    assert back["state"] == "succeeded", back["error"]
