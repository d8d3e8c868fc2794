# shim/ctl/: vmshimctl, the command-line client of the control API.
