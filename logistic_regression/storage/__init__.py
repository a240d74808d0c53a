"""Where artifacts go and how: the spool format (`spool`), the writer the training
thread calls (`writer`), the uploader process (`uploader`), the S3 edge (`s3`) and
`sync` for what a run left behind (`sync`). Import the module you need; nothing is
re-exported here, so the uploader process starts without loading the rest."""
