
®"«
˜{"source_index":null,"input_rows":0,"malformed_rows":0,"lost_offsets":0,"output_rows":0,"event_time":{},"duration_ms":0,"state":[],"filled_blocks":null}{"num_rows":0}