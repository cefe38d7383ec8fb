# frozen_string_literal: true

# Creates (drops and re-creates) the delayed_jobs table exactly as
# `rails g delayed_job:active_record` does (delayed_job_active_record's
# templates/migration.rb, rendered for Rails 6.1), plus the app's `users` table.
#
#   DJ_DATABASE=sqlite3:/tmp/dj.db ruby tests/ruby/schema.rb

$dj_lab_create_database = true
require_relative 'env'

class CreateDelayedJobs < ActiveRecord::Migration[6.1]
  def self.up
    create_table :delayed_jobs, force: true do |table|
      table.integer :priority, default: 0, null: false # Allows some jobs to jump to the front of the queue
      table.integer :attempts, default: 0, null: false # Provides for retries, but still fail eventually.
      table.text :handler,                 null: false # YAML-encoded string of the object that will do work
      table.text :last_error                           # reason for last failure (See Note below)
      table.datetime :run_at                           # When to run. Could be Time.zone.now for immediately, or sometime in the future.
      table.datetime :locked_at                        # Set when a client is working on this object
      table.datetime :failed_at                        # Set when all retries have failed (actually, by default, the record is deleted instead)
      table.string :locked_by                          # Who is working on this object (if locked)
      table.string :queue                              # The name of the queue this job is in
      table.timestamps null: true
    end

    add_index :delayed_jobs, [:priority, :run_at], name: "delayed_jobs_priority"
  end

  def self.down
    drop_table :delayed_jobs
  end
end

class CreateUsers < ActiveRecord::Migration[6.1]
  def self.up
    create_table :users, force: true do |table|
      table.string :name
    end
  end

  def self.down
    drop_table :users
  end
end

ActiveRecord::Migration.verbose = ENV['DJ_SCHEMA_VERBOSE'] == '1'
CreateDelayedJobs.migrate(:up)
CreateUsers.migrate(:up)
puts JSON.generate('schema' => 'ok', 'adapter' => ActiveRecord::Base.connection.adapter_name,
                   'tables' => %w[delayed_jobs users])
