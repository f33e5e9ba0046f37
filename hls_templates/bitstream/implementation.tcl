# Synthesis, implementation and bitstream of the block design.
set wrapper [make_wrapper -fileset sources_1 -files [get_files -norecurse $design_name.bd] -top]
add_files -norecurse -fileset sources_1 $wrapper
set_property top ${design_name}_wrapper [current_fileset]
update_compile_order -fileset sources_1

launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    error "implementation failed: see [file join $build_dir $design_name.runs impl_1 runme.log]"
}

open_run impl_1
file mkdir $deploy_dir
report_utilization -file [file join $deploy_dir utilization.rpt]
report_timing_summary -file [file join $deploy_dir timing.rpt]
set worst_slack [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
if {$worst_slack ne "" && $worst_slack < 0} {
    puts "WARNING: timing not met at $clock_mhz MHz, worst setup slack $worst_slack ns: see deploy/timing.rpt"
}
file copy -force [file join $build_dir $design_name.runs impl_1 ${design_name}_wrapper.bit] \
    [file join $deploy_dir $design_name.bit]
