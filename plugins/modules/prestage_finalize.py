#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
# This module is implemented by an action plugin (plugins/action/prestage_finalize.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_finalize
short_description: Report a subcloud's prestage complete, with its prestage versions
version_added: 0.1.0
description:
  - The last task of the C(distcloud.prestage.prestage_install) and
    C(distcloud.prestage.prestage_sw_deploy) roles. Runs on the controller only.
  - Checks that the precheck passed, that the packages phase verified the content and, when the
    release has an image list, that the images phase verified the images; then returns
    RV(prestage_complete) and RV(prestage_versions). Otherwise it fails - nothing is reported
    complete whose content was not verified.
  - The versions are those the last phase read back from the subcloud after its changes.
  - In check mode it reports RV(prestage_complete) false.
extends_documentation_fragment:
  - distcloud.prestage.prestage
options:
  precheck:
    description: Registered result of M(distcloud.prestage.prestage_precheck).
    type: dict
    required: true
  packages:
    description: Registered result of M(distcloud.prestage.prestage_packages).
    type: dict
    required: true
  images:
    description: Registered result of M(distcloud.prestage.prestage_images) (may be skipped).
    type: dict
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Prestage complete
  distcloud.prestage.prestage_finalize:
    release: "24.09"
    precheck: "{{ prestage_precheck }}"
    packages: "{{ prestage_packages }}"
    images: "{{ prestage_images }}"
"""

RETURN = r"""
prestage_complete:
  description: The prestage of this subcloud is complete.
  type: bool
  returned: success
prestage_versions:
  description: "C(for-install: <v1,v2|None> - for-sw-deploy: <v|None>) (SPEC 2.4)."
  type: str
  returned: always
  sample: "for-install: 22.12,24.09 - for-sw-deploy: None"
"""
