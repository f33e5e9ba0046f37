puts "wrote [file join $deploy_dir $design_name.bit]: program it with the Vivado hardware manager, then reboot or rescan the PCIe bus"
