print("nvfp4")
