# PYNQ reads the block design from the .hwh file beside the .bit file.
# Vivado 2020.2 and later write it under .gen, older releases under .srcs.
set handoff [glob -nocomplain -directory $build_dir \
    $design_name.gen/sources_1/bd/$design_name/hw_handoff/$design_name.hwh \
    $design_name.srcs/sources_1/bd/$design_name/hw_handoff/$design_name.hwh]
if {[llength $handoff] == 0} {
    error "hardware handoff file $design_name.hwh not found under $build_dir"
}
file copy -force [lindex $handoff 0] [file join $deploy_dir $design_name.hwh]
write_hw_platform -fixed -include_bit -force -file [file join $deploy_dir $design_name.xsa]
puts "wrote [file join $deploy_dir $design_name.bit], $design_name.hwh and $design_name.xsa"
