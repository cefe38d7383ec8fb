# The Ruby side of benchmarks/throughput.py: delayed_job's own worker over no-op jobs.
# Usage: DJ_DATABASE=mysql2://root@127.0.0.1:3306/db ruby benchmarks/ruby_worker.rb
require "uri"
require "logger"
require "active_record"
require "delayed_job"
require "delayed_job_active_record"

uri = URI.parse(ENV.fetch("DJ_DATABASE"))
ActiveRecord::Base.establish_connection(
  adapter: "mysql2", host: uri.host, port: uri.port || 3306, username: uri.user || "root",
  password: uri.password.to_s, database: uri.path.sub("/", "")
)
ActiveRecord::Base.logger = nil
Delayed::Worker.logger = Logger.new(File::NULL)

NoopJob = Struct.new(:n) do
  def perform; end
end

started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
Delayed::Worker.new(exit_on_complete: true, quiet: true).start
elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
puts format("%.3f", elapsed)
