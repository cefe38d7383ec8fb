# Ruby's enqueue rate for benchmarks/enqueue_rate.py: Delayed::Job.enqueue of N no-op jobs.
# Usage: DJ_DATABASE=mysql2://root@127.0.0.1:3306/db ruby benchmarks/ruby_enqueue_rate.rb N
# Prints the seconds N enqueues took (after boot and connection).
require "uri"
require "active_record"
require "delayed_job"
require "delayed_job_active_record"

uri = URI.parse(ENV.fetch("DJ_DATABASE"))
ActiveRecord::Base.establish_connection(
  adapter: "mysql2", host: uri.host, port: uri.port || 3306, username: uri.user || "root",
  password: uri.password.to_s, database: uri.path.sub("/", "")
)
ActiveRecord::Base.logger = nil

NoopJob = Struct.new(:n) do
  def perform; end
end

count = Integer(ARGV.fetch(0))
ActiveRecord::Base.connection.execute("SELECT 1")
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
count.times { |i| Delayed::Job.enqueue(NoopJob.new(i)) }
puts format("%.4f", Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
